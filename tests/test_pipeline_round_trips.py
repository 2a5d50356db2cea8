"""What one customer's ask costs the database: the statements the pipeline sends for an ask
answered without Claude, counted on the real database and the real model (issue 15 and 32: every
round trip per ask shows in the load test's throughput). Counts, not times."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import close_old_connections, connection
from django.test.utils import CaptureQueriesContext

from faq import search
from faq.hours.models import WeeklyRange, shop_schedule
from faq.models import FAQEntry
from lib.internals import prepared_cursor, vector_cursor
from tests.support import admin_connection
from widget.chat import pipeline
from widget.models import Conversation, Message

# prepare without its thread hop (db_thread): the same statements, on this thread's connection.
prepare = pipeline.prepare.__wrapped__.__wrapped__

pytestmark = pytest.mark.django_db(transaction=True)


def statements_of(queries: CaptureQueriesContext) -> list[str]:
    return [" ".join(query["sql"].split()) for query in queries.captured_queries]


def ask(conversation: Conversation, text: str, ask_id: str = "") -> tuple[pipeline.Prepared, list]:
    with CaptureQueriesContext(connection) as queries:
        prepared = prepare(conversation, ask_id or uuid.uuid4().hex, text, time.monotonic())
    return prepared, statements_of(queries)


@pytest.fixture
def warm_shop(demo_shop, chat_without_claude):
    """The demo shop with its search index, the entries of its searches and its hours cached,
    as on a live server."""
    search.search(demo_shop, "opening hours")
    search.search(demo_shop, "Do you deliver to Princeton?")
    shop_schedule(demo_shop.pk)
    return demo_shop


def test_an_ask_is_three_statements_in_autocommit_the_question_first(warm_shop, monkeypatch):
    conversation = Conversation.objects.create(shop=warm_shop)
    commits = []
    commit = connection.commit
    monkeypatch.setattr(connection, "commit", lambda: commits.append(1) or commit())

    prepared, statements = ask(conversation, "Do you deliver to Princeton?", "ask-1")

    # The question is saved first, by one statement committed on its own (autocommit: no
    # BEGIN/COMMIT pair around it, nor around the answer's), which also reads the earlier turns
    # and the version of the shop's hours.
    first = statements[0]
    assert first.startswith('WITH question AS ( INSERT INTO "widget_message"')
    assert "faq_shophours" in first and "ORDER BY id DESC" in first
    # The words, the nearest vectors and their entries' versions, one query; the hits' entries,
    # unchanged since this process read them, need none of their own.
    assert "shop_vectors" in statements[1] and "hashtextextended" in statements[1]
    assert statements[2].startswith('INSERT INTO "widget_message"')  # the answer
    assert len(statements) == 3 and not commits
    assert prepared.answer.mode == Message.FAQ and prepared.answer.pk is not None
    stored = list(conversation.messages.order_by("id").values_list("role", "ask_id", "text"))
    assert stored == [
        (Message.USER, "ask-1", "Do you deliver to Princeton?"),
        (Message.BOT, "ask-1", prepared.answer.text),
    ]

    # A re-sent ask (its INSERT does nothing: the ask id is taken) returns the stored answer and
    # leaves the connection usable, in autocommit as inside a transaction.
    again, _ = ask(conversation, "Do you deliver to Princeton?", "ask-1")
    assert again.answer == prepared.answer
    assert conversation.messages.count() == 2


def test_the_asks_statements_are_prepared_once_per_connection_the_vector_scan_never(warm_shop):
    """PostgreSQL parses and plans the question's statement, the entries' SELECT (when the hits'
    entries changed, and at a process's first searches: here the fixture's) and the answer's
    INSERT once per connection (lib/internals.py, `prepared_cursor`); the nearest-vector query is
    planned at every search, for the shop's size."""
    conversation = Conversation.objects.create(shop=warm_shop)
    for number in range(3):
        ask(conversation, "Do you deliver to Princeton?", f"p{number}")

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [" ".join(row[0].split()) for row in cursor.fetchall()]
    assert len(prepared) == 3, prepared  # the same three statements each ask: prepared once
    assert any(sql.startswith("WITH question AS") for sql in prepared)
    assert any(sql.startswith('SELECT "faq_faqentry"."id"') for sql in prepared)
    assert any(sql.startswith('INSERT INTO "widget_message"') for sql in prepared)
    assert not any("shop_vectors" in sql for sql in prepared)


def test_a_connection_keeps_its_cursors_and_a_new_connection_gets_new_ones(warm_shop):
    """The chat's statements run on one psycopg cursor of each kind per connection
    (lib/internals.py, `_bound_cursor`: its adaptation learnt once), still Django's wrapper
    around it (errors as Django's), never closed by the `with` block; a replaced connection gets
    new cursors, and the old ones stay with the old connection."""
    conversation = Conversation.objects.create(shop=warm_shop)
    ask(conversation, "Do you deliver to Princeton?")
    with prepared_cursor() as first:
        pass
    with prepared_cursor() as again, vector_cursor() as vectors:
        assert again.cursor is first.cursor and not first.cursor.closed
        assert vectors.cursor is not first.cursor
    old_connection = connection.connection
    connection.close()
    prepared, _ = ask(conversation, "Do you deliver to Princeton?")
    assert prepared.answer.pk is not None
    with prepared_cursor() as renewed:
        assert renewed.cursor is not first.cursor
        assert renewed.cursor.connection is connection.connection is not old_connection
    assert old_connection.closed


def test_a_new_conversations_first_ask_stores_it_in_the_same_statement(warm_shop):
    conversation = Conversation(shop=warm_shop, page_url="https://shop.example/", language="en")

    prepared, statements = ask(conversation, "Do you deliver to Princeton?")

    assert (
        statements[0].startswith('WITH conversation AS (INSERT INTO "widget_conversation"')
        and 'INSERT INTO "widget_message"' in statements[0]
    )
    assert len(statements) == 3
    saved = Conversation.objects.get(pk=conversation.pk)
    assert saved.page_url == "https://shop.example/" and saved.started is not None
    assert prepared.question.conversation_id == conversation.pk
    assert [m.role for m in saved.messages.order_by("id")] == [Message.USER, Message.BOT]


def test_the_earlier_turns_are_read_with_the_question(warm_shop):
    conversation = Conversation.objects.create(shop=warm_shop)
    for number in range(8):
        ask(conversation, f"question {number}", f"a{number}")

    question = pipeline.save_question(conversation, "a8", "and on Sundays?", None)

    expected = list(
        conversation.messages.filter(id__lt=question.question.id)
        .order_by("-id")
        .values_list("role", "ask_id", "text")[: pipeline.EARLIER_MESSAGES]
    )[::-1]
    assert question.earlier == expected and len(expected) == pipeline.EARLIER_MESSAGES
    assert expected[-1] == (Message.BOT, "a7", expected[-1][2])


def test_an_hours_question_is_two_statements_while_the_hours_are_unchanged(warm_shop):
    conversation = Conversation.objects.create(shop=warm_shop)

    prepared, statements = ask(conversation, "What are your opening hours?")

    assert prepared.answer.mode == Message.HOURS
    assert statements[0].startswith("WITH question AS")
    assert statements[1].startswith('INSERT INTO "widget_message"')
    assert len(statements) == 2  # no search, and the cached hours: no query for them

    # An edit of the hours (any write, here the ORM's) makes the next ask build them again: the
    # four queries of a Schedule, then the answer says the new hours.
    saturday = WeeklyRange.objects.get(hours__shop=warm_shop, weekday=5)
    WeeklyRange.objects.filter(pk=saturday.pk).update(closes="16:00")
    prepared, statements = ask(conversation, "What are your opening hours?")
    assert len(statements) == 2 + 4
    assert "Saturday 9:00 AM to 4:00 PM" in prepared.answer.text
    _, statements = ask(conversation, "What are your opening hours?")
    assert len(statements) == 2


def test_an_entry_changed_by_any_writer_is_read_again_at_the_next_search(warm_shop):
    """The hits' entries come from this process's cache only at the version the search's own
    statement read: an edit that leaves `updated` alone (a queryset update) is seen at once."""
    conversation = Conversation.objects.create(shop=warm_shop)
    first, _ = ask(conversation, "Do you deliver to Princeton?")
    entry = FAQEntry.objects.get(pk=first.answer.sources[0]["id"])
    FAQEntry.objects.filter(pk=entry.pk).update(answer="Yes, by bicycle, to Princeton.")

    prepared, statements = ask(conversation, "Do you deliver to Princeton?")

    assert prepared.answer.text == "Yes, by bicycle, to Princeton."
    assert statements[2].startswith('SELECT "faq_faqentry"')  # the changed entry, read again
    assert len(statements) == 4
    again, statements = ask(conversation, "Do you deliver to Princeton?")
    assert again.answer.text == "Yes, by bicycle, to Princeton." and len(statements) == 3
    hit = search.search(warm_shop, "Do you deliver to Princeton?").best.entry
    assert hit is not search.search(warm_shop, "Do you deliver to Princeton?").best.entry
    assert (hit.pk, hit.question, hit.updated) == (entry.pk, entry.question, entry.updated)


def test_a_kept_connection_is_checked_by_a_round_trip_only_when_the_database_cut_it(
    warm_shop, monkeypatch
):
    """CONN_HEALTH_CHECKS' `SELECT 1` before an ask's first statement runs only when the idle
    connection's socket has something to read (lib/internals.py, `_check_health`): a connection
    the database cut is replaced at the next ask, a live one costs no round trip."""
    conversation = Conversation.objects.create(shop=warm_shop)
    checks = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or is_usable())
    ask(conversation, "Do you deliver to Princeton?")
    close_old_connections()  # as after every ask (pipeline.db_thread)
    ask(conversation, "Do you deliver to Princeton?")
    assert checks == []

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    close_old_connections()
    with admin_connection() as admin:
        # With a timeout PostgreSQL waits until the backend is gone (its FATAL error sent).
        assert admin.execute("SELECT pg_terminate_backend(%s, 30000)", [pid]).fetchone()[0]
    prepared, _ = ask(conversation, "Do you deliver to Princeton?")
    assert checks == [1] and prepared.answer.pk is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


@pytest.fixture
def commit_settings_seen():
    """The synchronous_commit each INSERT into widget_message ran under, oldest first, as a
    trigger of the real database saw it (role, setting)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TABLE commit_seen (id serial, role text, setting text);
            CREATE FUNCTION record_commit_seen() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO commit_seen (role, setting)
                VALUES (NEW.role, current_setting('synchronous_commit'));
                RETURN NULL;
            END $$;
            CREATE TRIGGER record_commit_seen AFTER INSERT ON widget_message
                FOR EACH ROW EXECUTE FUNCTION record_commit_seen();
            """
        )

    def seen() -> list[tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT role, setting FROM commit_seen ORDER BY id")
            return cursor.fetchall()

    yield seen
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER record_commit_seen ON widget_message; "
            "DROP FUNCTION record_commit_seen(); DROP TABLE commit_seen"
        )


def test_the_chats_writes_commit_asynchronously_and_only_they(
    warm_shop, commit_settings_seen, settings
):
    # As a server's connection is configured (the test process's own connections commit
    # without waiting: shopbot/test_settings.py); RESET at the end returns to that.
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = on")
    conversation = Conversation(shop=warm_shop)  # stored by its first ask's statement
    prepared, statements = ask(conversation, "Do you deliver to Princeton?")
    assert prepared.answer is not None and len(statements) == 3
    # The question's statement and the answer's INSERT each ran with synchronous_commit off...
    assert commit_settings_seen() == [(Message.USER, "off"), (Message.BOT, "off")]
    # ...for their own transactions only: the connection's next statement (an owner's edit on
    # it, or another client's behind a pooler) commits as configured.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"

    settings.CHAT_DURABLE_COMMITS = True
    ask(conversation, "Do you sell gift cards?")
    assert commit_settings_seen()[2:] == [(Message.USER, "on"), (Message.BOT, "on")]
    with connection.cursor() as cursor:
        cursor.execute("RESET synchronous_commit")
