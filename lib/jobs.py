"""
The background jobs' queue: procrastinate, on the project's own PostgreSQL (no other broker).

Each layer declares its jobs with `app.task` in its `tasks.py` (faq/tasks.py: re-embedding and
index builds; widget/tasks.py: hand-off emails, reminders, retention purges), found by name when
the apps are ready. `manage.py worker` runs them (shopbot/management/commands/worker.py).

- `defer(name, ...)` queues a job inside the caller's transaction: the job is committed with the
  change it is about, or not at all, and the worker hears of it at that commit (LISTEN/NOTIFY).
  With the worker down, jobs wait in the table and run when it is back; nothing is lost.
- `waiting` / `failed_jobs`: what the owner's admin says about the queue ("N changes waiting").
- `Retry`: a retry strategy whose tries and pauses are read from settings when a job fails.
- `retry_stalled`: every minute, a job left running by a worker that stopped sending its heartbeat
  for JOBS_STALLED_SECONDS (killed outright, its machine gone) is queued again, and a worker
  finishes it.
- JOBS_AT_COMMIT (the test suite's setting, never production's): a job runs in the process that
  deferred it, as soon as the transaction commits; its retries after their pauses (`run_now`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Job

__all__ = ["Retry", "app", "defer", "failed_jobs", "run_now", "waiting"]

logger = logging.getLogger(__name__)

WAITING = ("todo", "doing")


class Retry(BaseRetryStrategy):
    """Retry a failed job up to `tries()` runs in all, `pause(n)` seconds after the n-th failure
    (both read when the job fails, so a setting changed at run time counts)."""

    def __init__(self, tries: Callable[[], int], pause: Callable[[int], float]) -> None:
        self.tries, self.pause = tries, pause

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        failed = job.attempts + 1
        if failed >= self.tries():
            return None
        return RetryDecision(retry_in={"seconds": self.pause(failed)})


@app.periodic(cron="* * * * *")
@app.task(name="jobs.retry_stalled", queueing_lock="jobs.retry_stalled", pass_context=True)
async def retry_stalled(context, timestamp: int) -> None:
    """Queue again the jobs whose worker died with them in hand (no heartbeat for
    JOBS_STALLED_SECONDS)."""
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.JOBS_STALLED_SECONDS
    ):
        logger.warning(
            "Job %s %s was left running by a stopped worker: retrying", job.id, job.task_name
        )
        await manager.retry_job(job)


def defer(name: str, *, lock: str | None = None, queueing_lock: str | None = None, **kwargs: Any):
    """Queue the job `name` with these (JSON) arguments, in the current transaction. `lock`: jobs
    with the same lock run one at a time; `queueing_lock`: at most one such job waits (a second
    one is dropped, the waiting one will do)."""
    if settings.JOBS_AT_COMMIT:
        # robust: the change is committed; a job that fails every try is logged, as the worker's.
        transaction.on_commit(lambda: run_now(name, kwargs), robust=True)
        return
    task = app.tasks[name]
    try:
        with transaction.atomic():  # a savepoint: a refused duplicate leaves the caller's intact
            task.configure(lock=lock, queueing_lock=queueing_lock).defer(**kwargs)
    except AlreadyEnqueued:
        pass


def run_now(name: str, kwargs: dict[str, Any], attempts: int = 0) -> Any:
    """Run the job `name` here and now (JOBS_AT_COMMIT). A try that fails and is to be retried
    hands the next try to a thread of its own, which waits the job's pause first, as the worker
    would: the caller (a test's chat) never sleeps through a retry's pause."""
    task = app.tasks[name]
    try:
        return task(**kwargs)
    except Exception as exc:
        job = Job(
            queue=task.queue, lock=None, queueing_lock=None, task_name=name, attempts=attempts
        )
        retry = task.retry_strategy and task.retry_strategy.get_retry_exception(exc, job)
        if retry is None:
            raise
        logger.warning("Job %s failed (%s), retrying", name, exc)
        pause = (retry.retry_decision.retry_at or timezone.now()) - timezone.now()
        threading.Thread(
            target=_retry_later,
            args=(name, kwargs, attempts + 1, max(0.0, pause.total_seconds())),
            name=f"job-retry-{name}",
            daemon=True,
        ).start()
        return None


def _retry_later(name: str, kwargs: dict[str, Any], attempts: int, pause: float) -> None:
    time.sleep(pause)
    try:
        run_now(name, kwargs, attempts)
    except Exception:
        logger.exception("Job %s failed on its last try", name)
    finally:
        connections.close_all()  # this thread's own


def waiting(name: str, **args: Any):
    """The jobs `name` waiting or running whose arguments match `args` (Django lookups on the
    job's JSON arguments, e.g. shop_id__in=[...])."""
    found = {f"args__{key}": value for key, value in args.items()}
    return ProcrastinateJob.objects.filter(task_name=name, status__in=WAITING, **found)


def failed_jobs(name: str, **args: Any):
    """The jobs `name` that failed for good (every try), whose arguments match `args`."""
    found = {f"args__{key}": value for key, value in args.items()}
    return ProcrastinateJob.objects.filter(task_name=name, status="failed", **found)
