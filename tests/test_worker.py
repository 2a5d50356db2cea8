"""
The worker (`manage.py worker`, lib/jobs.py's queue) as a real process against the test database:
jobs are queued for real here (JOBS_AT_COMMIT off), the worker is started, stopped with SIGTERM
and started again, and its effects are read back through the bot's own search, the owner's admin
and pg_stat_activity. Real PostgreSQL, real model, a real SMTP server; nothing mocked.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from procrastinate.periodic import PeriodicDeferrer
from websockets.asyncio.client import connect

from faq import embedding, indexing
from faq.models import FAQEntry, SearchIndex
from faq.search import search
from harness.daphne_process import free_port
from lib import jobs
from owner import unanswered
from tests.support import (
    Inbox,
    admin_browser,
    csrf_of,
    daphne_pair,
    make_handoff,
    make_owner,
    server_environment,
    stored_conversation,
    wait_for,
)
from tests.test_knowledge_base import change_form
from widget import handoff_email
from widget.models import Conversation, Handoff, Message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 180  # Django, the model and its first batch, on a busy machine


@pytest.fixture
def queued(settings, django_db_blocker):
    """Jobs go into the queue's table, as in production, instead of running at commit. The table
    starts empty: it is procrastinate's, which the test database's flush between tests leaves
    alone (a failed job left by one test was counted by the next)."""
    settings.JOBS_AT_COMMIT = False
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


@contextmanager
def worker_process(log: Path, **env: str) -> Iterator[subprocess.Popen]:
    """`manage.py worker` on this run's database, ready; stopped (SIGTERM) on the way out."""
    environment = server_environment(JOBS_AT_COMMIT="False", LOG_LEVEL="WARNING", **env)
    # A test may start a second worker on the same log: only this one's lines say it is ready.
    start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "worker"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: b"Worker ready" in log.read_bytes()[start:] or process.poll() is not None, 180
        )
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def jobs_in(status: str) -> int:
    return jobs.ProcrastinateJob.objects.filter(status=status).count()


def finds(shop, question: str, entry: FAQEntry) -> bool:
    best = search(shop, question).hits[:1]
    return bool(best) and best[0].entry.pk == entry.pk


def test_edits_wait_for_a_stopped_worker_and_reach_the_bot_through_it_and_a_restart_loses_none(
    demo_shop, queued, tmp_path
):
    owner = make_owner(demo_shop)
    client = Client()
    client.force_login(owner)
    entries = list(demo_shop.entries.order_by("pk")[:8])
    new = {e.pk: f"Can I order a {word} bouquet?" for e, word in zip(entries, WORDS, strict=True)}
    for entry in entries:  # eight saves, eight transactions: eight jobs
        entry.question = new[entry.pk]
        entry.save()
        entry.refresh_from_db()

    # The worker is down: everything is saved and queued, the owner is told, the bot answers
    # from the index it had.
    assert indexing.waiting_changes([demo_shop.pk]) == 8
    page = client.get("/admin/faq/faqentry/").content.decode()
    assert "8 changes waiting" in page
    assert set(indexing.states(entries).values()) == {indexing.STALE}
    assert search(demo_shop, "Do you deliver to Princeton?").hits  # the old index still answers

    # Started, then stopped with SIGTERM while a job is in hand: that job finishes, the rest wait.
    log = tmp_path / "worker.log"
    with worker_process(log) as worker:
        wait_for(lambda: jobs_in("doing") >= 1, READY_TIMEOUT)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()
    assert jobs_in("doing") == 0  # nothing left half done
    left = indexing.waiting_changes([demo_shop.pk])
    assert 1 <= left < 8, "stopped mid-queue"
    assert jobs_in("failed") == 0

    # Started again: the rest is applied, nothing lost, and each new question finds its entry.
    with worker_process(log):
        wait_for(lambda: indexing.waiting_changes([demo_shop.pk]) == 0, 60)
        assert set(indexing.states(entries).values()) == {indexing.FRESH}
        for entry in entries:
            assert finds(demo_shop, new[entry.pk], entry)
        assert "changes waiting" not in client.get("/admin/faq/faqentry/").content.decode()

        # With the worker running, an edit through the admin reaches the bot's answer.
        entry = entries[0]
        started = time.monotonic()
        response = client.post(
            f"/admin/faq/faqentry/{entry.pk}/change/",
            change_form(
                entry,
                question="Is there a discount for teachers?",
                answer="Yes: 15% off with a school ID.",
                alternatives="",
            ),
        )
        assert response.status_code == 302, response.content.decode()[-2000:]
        wait_for(lambda: finds(demo_shop, "Is there a discount for teachers?", entry), 30)
        print(f"An admin edit reached the bot's search in {time.monotonic() - started:.2f} s")
        _, answer = asyncio.run(ask(demo_shop, "do teachers get a discount"))
        assert answer["text"] == "Yes: 15% off with a school ID."
    assert jobs_in("failed") == 0


WORDS = ["zebra", "walnut", "cobalt", "tundra", "marble", "saffron", "harbour", "velvet"]


async def ask(shop, question: str):
    from tests.support import Chat

    async with Chat(shop.public_key) as chat:
        await chat.ready()
        return await chat.ask(question)


class SlowInbox(Inbox):
    """A mail server that takes up to `delay` seconds over each message, saying when it is inside;
    `release()` (from the test's thread) ends the wait early, once the test has looked."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.inside = delay, False
        self.released = asyncio.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        self.inside = True
        try:
            await asyncio.wait_for(self.released.wait(), self.delay)
        except TimeoutError:
            pass
        self.inside = False
        return await super().handle_DATA(server, session, envelope)

    def release(self, smtp: Controller) -> None:
        smtp.loop.call_soon_threadsafe(self.released.set)


def worker_connections() -> int:
    """Database sessions the worker's jobs hold now (the queue's own are named apart)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shopbot-worker'"
        )
        return cursor.fetchone()[0]


def leave_request(shop, note: str) -> Handoff:
    conversation = stored_conversation(shop, [("Can you fix my car?", {"mode": "fallback"})])
    with transaction.atomic():
        handoff = make_handoff(conversation, email="ann@example.com", note=note)
        handoff_email.notify_owner_later(handoff.pk, "")
    return handoff


def mail_settings(port: int, **settings: str) -> dict[str, str]:
    """A worker's environment for the mail server on loopback `port` (no model warm-up)."""
    return {
        "EMBEDDING_WARM_ON_START": "False",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "False",
        **settings,
    }


def test_an_owner_email_holds_no_connection_on_a_slow_or_down_mail_server_and_a_failing_job_is_retried_and_shown(  # noqa: E501
    demo_shop, queued, tmp_path
):
    owner = make_owner(demo_shop, email="owner@petal.example")
    port = free_port()
    mail = SlowInbox(delay=2.0)
    smtp = Controller(mail, hostname="127.0.0.1", port=port)
    smtp.start()
    # A retry is due after its pause with no notification: the worker polls for it (not every 5 s).
    env = mail_settings(
        port,
        EMAIL_TIMEOUT="5",
        HANDOFF_EMAIL_TRIES="3",
        HANDOFF_RETRY_SECONDS="1",
        JOBS_POLL_SECONDS="0.2",
    )
    try:
        with worker_process(tmp_path / "worker.log", **env):
            # Up but slow: while the server takes its time, the job holds no session.
            slow = leave_request(demo_shop, "A slow server")
            wait_for(lambda: mail.inside, 30)
            assert worker_connections() == 0
            mail.release(smtp)  # looked: the server need not sit out the rest of its delay
            mail.wait(1)
            wait_for(lambda: Handoff.objects.get(pk=slow.pk).notified is not None, 30)
            wait_for(lambda: worker_connections() == 0, 5)  # closed when the job ends

            # Down: tried, paused (holding nothing), tried again, then failed and shown.
            smtp.stop()
            smtp = None
            down = leave_request(demo_shop, "A dead server")
            wait_for(lambda: Handoff.objects.get(pk=down.pk).notify_attempts >= 1, 30)
            assert worker_connections() == 0  # the pause between tries
            wait_for(lambda: jobs.failed_jobs("widget.notify_owner").exists(), 60)
    finally:
        if smtp is not None:
            smtp.stop()
    down.refresh_from_db()
    assert down.notified is None and down.notify_attempts == 3
    assert "Connection refused" in down.notify_error
    client = Client()
    client.force_login(owner)
    page = client.get("/admin/widget/handoff/").content.decode()
    assert "failed, 3 attempt(s)" in page


@pytest.fixture
def worker_in_process(settings):
    """`manage.py worker --once` in this process (the jobs due now, then back), with the test
    connection's settings as they were afterwards (the command changes them for a worker)."""
    settings.EMBEDDING_WARM_ON_START = False
    kept = {key: value for key, value in connection.settings_dict.items()}
    options = dict(connection.settings_dict.get("OPTIONS", {}))
    yield lambda: call_command("worker", "--once", stdout=io.StringIO())
    connection.settings_dict.update(kept)
    connection.settings_dict["OPTIONS"] = options


def test_a_failing_re_embedding_is_retried_then_named_to_the_owner_and_queued_again(
    demo_shop, queued, worker_in_process, settings, monkeypatch
):
    settings.INDEXING_TRIES = 2
    owner = make_owner(demo_shop)
    client = Client()
    client.force_login(owner)
    real = embedding.embed

    def failing(texts, kinds=None):
        raise RuntimeError("the model's file is unreadable")

    monkeypatch.setattr(embedding, "embed", failing)  # the fault; the queue and worker are real
    entry = demo_shop.entries.order_by("pk").first()
    entry.answer = "A new answer the model cannot read."
    entry.save()

    worker_in_process()  # the first try fails; the retry waits its pause
    job = jobs.ProcrastinateJob.objects.get(task_name=indexing.REFRESH)
    assert (job.status, job.attempts) == ("todo", 1)
    assert "1 change waiting" in client.get("/admin/faq/faqentry/").content.decode()
    # The retry waits its pause in the queue's table (scheduled_at): made due, not slept out.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_jobs SET scheduled_at = now() "
            "WHERE id = %s AND scheduled_at > now()",
            [job.pk],
        )
        assert cursor.rowcount == 1  # it was waiting a pause, not due at once
    worker_in_process()  # the second and last try fails too
    assert jobs.ProcrastinateJob.objects.get(pk=job.pk).status == "failed"
    page = client.get("/admin/faq/faqentry/").content.decode()
    assert "1 entry could not be re-embedded" in page and "change waiting" not in page
    assert indexing.states([entry]) == {entry.pk: indexing.STALE}

    monkeypatch.setattr(embedding, "embed", real)  # the model is back
    client.post(
        "/admin/faq/faqentry/",
        {"action": "reembed_selected", "_selected_action": [entry.pk], "index": "0"},
    )
    worker_in_process()
    assert indexing.states([entry]) == {entry.pk: indexing.FRESH}
    assert "could not be re-embedded" not in client.get("/admin/faq/faqentry/").content.decode()


async def ask_server(server, key: str, question: str) -> dict:
    """One ask on a real server's websocket; the answer frame."""
    async with connect(f"{server.ws_url}/ws/chat/{key}/", open_timeout=READY_TIMEOUT) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "ask", "id": "a1", "text": question}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), READY_TIMEOUT))
            if frame["type"] != "delta":
                return frame


def test_an_edit_through_one_web_process_is_answered_by_another_once_the_worker_ran(
    demo_shop, queued, tmp_path
):
    """Past one machine: two daphne processes and one worker on one database."""
    owner = make_owner(demo_shop, "owner")
    owner.set_password("a long owner password 1")
    owner.save()
    entry = demo_shop.entries.order_by("pk").first()
    form = change_form(
        entry,
        question="Is there a discount for teachers?",
        answer="Yes: 15% off with a school ID.",
        alternatives="",
    )
    env = server_environment(
        JOBS_AT_COMMIT="False",
        SESSION_COOKIE_SECURE="0",  # plain http on loopback
        CSRF_COOKIE_SECURE="0",
        EMBEDDING_WARM_ON_START="False",  # only b's first ask needs the model: loaded then
    )
    with worker_process(tmp_path / "worker.log"), daphne_pair(env, READY_TIMEOUT) as (a, b):
        with admin_browser(a, "owner", "a long owner password 1") as browser:
            page = browser.get(f"/admin/faq/faqentry/{entry.pk}/change/")
            saved = browser.post(
                f"/admin/faq/faqentry/{entry.pk}/change/",
                data={**form, "csrfmiddlewaretoken": csrf_of(page.text)},
            )
            assert saved.status_code == 302, saved.text[-1000:]
        wait_for(lambda: indexing.waiting_changes([demo_shop.pk]) == 0, 60)
        answer = asyncio.run(ask_server(b, demo_shop.public_key, "do teachers get a discount"))
    assert answer["type"] == "answer" and answer["text"] == "Yes: 15% off with a school ID."


def test_while_a_rebuild_waits_the_bot_answers_from_the_last_index(
    demo_shop, queued, worker_in_process
):
    search(demo_shop, "Do you deliver?")  # the shop's first search builds and stores its index
    own = {"shop": demo_shop, "model_name": embedding.model_name()}  # MiniLM's, of an English shop
    stored = SearchIndex.objects.get(**own)
    gone = demo_shop.entries.order_by("pk").first()
    gone.delete()  # its vectors go; the shop's index is now a job for the worker

    assert jobs.waiting(indexing.REINDEX, shop_id=demo_shop.pk).count() == 1
    result = search(demo_shop, gone.question)  # no index matches the vectors now: the last one
    assert result.hits and all(hit.entry.pk != gone.pk for hit in result.hits)
    assert SearchIndex.objects.get(**own).data == stored.data  # nothing built here

    worker_in_process()
    assert SearchIndex.objects.get(**own).vector_count < stored.vector_count


# --- The scheduled jobs ------------------------------------------------------------------------


SCHEDULED = {
    "jobs.retry_stalled": "* * * * *",
    "owner.embed_unanswered": "* * * * *",
    "widget.send_due": "*/5 * * * *",
    "widget.purge_conversations": "15 3 * * *",
}


def defer_scheduled(at: datetime) -> list[str]:
    """What the worker's scheduler (procrastinate's PeriodicDeferrer, as `manage.py worker` runs
    it) queues at `at`: the names of the jobs it deferred."""
    before = set(jobs.ProcrastinateJob.objects.values_list("pk", flat=True))
    deferrer = PeriodicDeferrer(jobs.app.periodic_registry)
    asyncio.run(deferrer.defer_jobs(deferrer.get_previous_tasks(at.timestamp())))
    new = jobs.ProcrastinateJob.objects.exclude(pk__in=before).filter(status="todo")
    return sorted(new.values_list("task_name", flat=True))


def test_the_scheduled_jobs_are_registered_and_do_their_work_when_due(
    demo_shop, queued, worker_in_process, inbox, settings, monkeypatch
):
    crons = {p.task.name: p.cron for p in jobs.app.periodic_registry.periodic_tasks.values()}
    assert crons == SCHEDULED

    # Work for each: an owner's email whose retry is due, a conversation past retention, and a
    # job left running by a worker that died (fetched by procrastinate, never finished).
    settings.CONVERSATION_RETENTION_DAYS = 30
    unsent = leave_request(demo_shop, "Still unsent")
    Handoff.objects.filter(pk=unsent.pk).update(
        notify_attempts=1, notify_error="ConnectionRefusedError", notify_after=timezone.now()
    )
    jobs.ProcrastinateJob.objects.all().delete()  # the request's own job: lost, say
    old = stored_conversation(demo_shop, [("Do you deliver?", {"mode": "faq"})], days_ago=40)
    kept = stored_conversation(demo_shop, [("Do you deliver?", {"mode": "faq"})], days_ago=2)
    indexing.reindex_later([demo_shop.pk])
    stalled = asyncio.run(jobs.app.job_manager.fetch_job(queues=None, worker_id=None))
    assert stalled.task_name == indexing.REINDEX
    assert jobs_in("doing") == 1

    # ... and a customer's question the bot could not answer (the request's is another).
    fell_back = stored_conversation(
        demo_shop, [("Do you sell garden gnomes?", {"mode": "fallback"})]
    )
    question = fell_back.messages.get(role=Message.USER)
    assert question.embedding is None

    # At 10:06 the every-minute jobs are due, and the five-minute one of 10:05 (procrastinate
    # catches up on ticks up to 10 minutes late); at 03:15 (UTC) the nightly purge too. On a day
    # long past: a real worker of another test defers the real day's ticks once each (procrastinate
    # remembers each tick), so a test run just after 03:15 today found the purge already deferred.
    day = (2025, 6, 10)
    due = ["jobs.retry_stalled", "owner.embed_unanswered", "widget.send_due"]
    assert defer_scheduled(datetime(*day, 10, 6, 30, tzinfo=UTC)) == due
    jobs.ProcrastinateJob.objects.filter(status="todo").delete()
    assert defer_scheduled(datetime(*day, 3, 15, 30, tzinfo=UTC)) == sorted(SCHEDULED)

    worker_in_process()  # the four jobs, then the stalled one they queued again
    assert jobs.ProcrastinateJob.objects.filter(status__in=["todo", "doing", "failed"]).count() == 0
    ((recipients, mail),) = inbox.wait(1)
    assert "Still unsent" in mail.get_body().get_content()
    assert Handoff.objects.get(pk=unsent.pk).notified is not None
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert Conversation.objects.filter(pk=kept.pk).exists()
    assert indexing.waiting_changes([demo_shop.pk]) == 0
    question.refresh_from_db()
    assert question.embedding is not None  # stored by the worker: the owner's page reads it
    answered = kept.messages.get(role=Message.USER)
    assert answered.embedding is None  # only unanswered questions are embedded

    def page_embeds(texts):
        raise AssertionError(f"the page embedded {texts}")

    monkeypatch.setattr(unanswered, "embed_questions", page_embeds)
    found = unanswered.groups(demo_shop)
    assert [question.pk] in [group.message_ids for group in found]


# --- The owner's emails are jobs ---------------------------------------------------------------


def test_email_the_owners_again_queues_the_email_and_the_worker_sends_it(
    demo_shop, queued, worker_in_process, inbox
):
    owner = make_owner(demo_shop, email="owner@petal.example")
    client = Client()
    client.force_login(owner)
    handoff = leave_request(demo_shop, "Gave up on")
    jobs.ProcrastinateJob.objects.all().delete()  # its tries are over
    error = "ConnectionRefusedError: [Errno 111] Connection refused"
    Handoff.objects.filter(pk=handoff.pk).update(notify_attempts=5, notify_error=error)
    assert "failed, 5 attempt(s)" in client.get("/admin/widget/handoff/").content.decode()

    page = client.post(
        "/admin/widget/handoff/",
        {"action": "email_owners_again", "_selected_action": [handoff.pk], "index": "0"},
        follow=True,
    ).content.decode()
    assert "1 unsent email(s) queued" in page and "retrying, 5 attempt(s)" in page
    assert inbox.received == []  # the owner's click sent nothing itself
    assert jobs.waiting("widget.notify_owner", handoff_id=handoff.pk).count() == 1
    detail = client.get(f"/admin/widget/handoff/{handoff.pk}/change/").content.decode()
    assert "It is queued to be tried again." in detail
    assert "Email the owners again now" not in detail  # queued already

    worker_in_process()
    ((recipients, mail),) = inbox.wait(1)
    assert "Gave up on" in mail.get_body().get_content()
    handoff.refresh_from_db()
    assert handoff.notified is not None and handoff.notify_attempts == 6
    assert "attempt(s)" not in client.get("/admin/widget/handoff/").content.decode()


# --- A worker killed mid-job -------------------------------------------------------------------


class HangingInbox(Inbox):
    """A mail server that holds the first message until `release`, then refuses it (451: not
    delivered); later ones are kept as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.released = False, asyncio.Event()
        self.held = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.held == 0:
            self.held, self.inside = 1, True
            await self.released.wait()
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


def dead_worker_silent(seconds: float) -> bool:
    """Whether every worker with a job in hand has sent no heartbeat for `seconds`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM procrastinate_jobs j JOIN procrastinate_workers w "
            "ON w.id = j.worker_id WHERE j.status = 'doing' "
            "AND w.last_heartbeat > now() - make_interval(secs => %s)",
            [seconds],
        )
        return cursor.fetchone()[0] == 0


def test_a_worker_killed_mid_job_leaves_it_to_be_queued_again_and_another_worker_finishes_it(
    demo_shop, queued, tmp_path
):
    """SIGKILL while the owner's reply is being emailed: the job stays "doing" with a dead
    worker's id; once that worker has been silent JOBS_STALLED_SECONDS, `jobs.retry_stalled`
    (run by a new worker) queues it again and the new worker sends the email. Nothing lost."""
    port = free_port()
    mail = HangingInbox()
    smtp = Controller(mail, hostname="127.0.0.1", port=port)
    smtp.start()
    env = mail_settings(port, EMAIL_TIMEOUT="120", JOBS_STALLED_SECONDS="3")
    conversation = stored_conversation(demo_shop, [("Can you fix my car?", {"mode": "fallback"})])
    handoff = make_handoff(  # the owners were emailed: the reply is the only email
        conversation, email="ann@example.com", note="Car?", notified=timezone.now()
    )
    try:
        log = tmp_path / "worker.log"
        with worker_process(log, **env) as worker:
            reply, _ = handoff_email.answer(handoff, "Joe's Garage can.")
            wait_for(lambda: mail.inside, 60)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        job = jobs.ProcrastinateJob.objects.get(task_name="widget.email_customer")
        assert job.status == "doing" and job.worker_id is not None  # left in hand
        smtp.loop.call_soon_threadsafe(mail.released.set)  # the dead worker's message: refused
        wait_for(lambda: dead_worker_silent(3), 30)

        with worker_process(log, **env):
            jobs.defer("jobs.retry_stalled", timestamp=0)  # as its scheduler does every minute
            ((recipients, sent),) = mail.wait(1, 60)
            wait_for(lambda: Message.objects.get(pk=reply.pk).emailed is not None, 30)
            wait_for(lambda: not jobs.ProcrastinateJob.objects.exclude(status="failed").exists())
    finally:
        smtp.stop()
    assert recipients == ["ann@example.com"] and "Joe's Garage" in sent.get_body().get_content()
    assert jobs_in("failed") == 0
    assert "left running by a stopped worker: retrying" in log.read_text()


def test_a_reply_whose_conversation_was_erased_before_its_email_is_not_sent_nor_failed(
    demo_shop, queued, worker_in_process, inbox
):
    conversation = stored_conversation(demo_shop, [("Can you fix my car?", {"mode": "fallback"})])
    handoff = make_handoff(conversation, email="ann@example.com", note="Car?")
    handoff_email.answer(handoff, "Joe's Garage can.")
    assert jobs.waiting("widget.email_customer").count() == 1
    Conversation.objects.filter(pk=conversation.pk).erase()  # the customer asked to be forgotten
    worker_in_process()
    assert jobs_in("failed") == 0 and not jobs.waiting("widget.email_customer").exists()
    assert [rcpt for rcpt, _ in inbox.received if rcpt == ["ann@example.com"]] == []
