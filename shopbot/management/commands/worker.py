"""
`manage.py worker`: the process that runs everything but answering customers (lib/jobs.py's
queue): re-embedding and index builds after owners' edits and imports, the owners' emails and their
retries, and the scheduled jobs (due retries and reminders every five minutes, the retention purge
at night). `make run` starts one beside daphne (`manage.py serve`); production runs it as its own
systemd unit (docs/production.md). Any number may run against one database.

Jobs arrive by LISTEN/NOTIFY the moment their transaction commits; a retry whose pause is over is
found by polling every JOBS_POLL_SECONDS (5 s).
SIGTERM or Ctrl-C stops fetching and lets the job in hand finish; a second one aborts it.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from procrastinate.contrib.django.utils import connector_params
from procrastinate.psycopg_connector import PsycopgConnector

from faq import embedding
from lib.jobs import app


class Command(BaseCommand):
    help = (
        "Run the background jobs (re-embedding, index builds, owner emails and their retries, "
        "reminders, retention purges) until SIGTERM or Ctrl-C, which let the job in hand finish."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Run the jobs due now, then exit (no scheduled jobs).",
        )

    def handle(self, *args, once: bool, **options) -> None:
        # A job's database connection is closed when the job ends, so an idle worker (or one
        # waiting to retry an email) holds only the queue's own: one listening, two in its pool.
        # Both kinds are named in pg_stat_activity: shopbot-worker (jobs), shopbot-worker-queue.
        database = connections["default"].settings_dict
        database["CONN_MAX_AGE"] = 0
        database.setdefault("OPTIONS", {}).setdefault("application_name", "shopbot-worker")
        started = time.monotonic()
        if settings.EMBEDDING_WARM_ON_START:
            # The FAQ's own texts are embedded here, never in a web process: load that model now,
            # so the first edit is in within a second rather than after the model's load.
            embedding.embed(["warming up"], ["question"])
        connections.close_all()
        self.stdout.write(f"Worker ready in {time.monotonic() - started:.1f} s.")
        self.stdout.flush()
        queue = connector_params("default")
        queue["application_name"] = f"{queue['application_name']}-queue"
        connector = PsycopgConnector(kwargs=queue, min_size=1, max_size=2)
        with app.replace_connector(connector):
            app.run_worker(
                wait=not once,
                concurrency=1,
                listen_notify=True,
                fetch_job_polling_interval=settings.JOBS_POLL_SECONDS,
                delete_jobs="successful",
                shutdown_graceful_timeout=None,
                # A worker without a heartbeat for this long is dead (lib/jobs.retry_stalled).
                stalled_worker_timeout=settings.JOBS_STALLED_SECONDS,
                update_heartbeat_interval=min(10.0, settings.JOBS_STALLED_SECONDS / 3),
            )
