"""What one customer's ask costs the database: the statements the pipeline sends for an ask
answered without Claude, on the real database and the real model (issue 15: every round trip
per ask shows in the load test's throughput)."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from faq import search
from widget.chat import pipeline
from widget.models import Conversation, Message

# prepare without its thread hop (db_thread): the same statements, on this thread's connection.
prepare = pipeline.prepare.__wrapped__.__wrapped__


@pytest.mark.django_db(transaction=True)
def test_one_ask_is_five_statements_in_autocommit_the_question_first(
    demo_shop, chat_without_claude, monkeypatch
):
    conversation = Conversation.objects.create(shop=demo_shop)
    search.search(demo_shop, "opening hours")  # the shop's index cached, as on a live server
    commits = []
    commit = connection.commit
    monkeypatch.setattr(connection, "commit", lambda: commits.append(1) or commit())

    with CaptureQueriesContext(connection) as queries:
        prepared = prepare(conversation, "ask-1", "Do you deliver to Princeton?", time.monotonic())

    statements = [query["sql"] for query in queries.captured_queries]
    # The question is saved before anything else, by one INSERT committed on its own (autocommit:
    # no BEGIN/COMMIT pair around it, nor around the answer's).
    assert statements[0].startswith('INSERT INTO "widget_message"')
    assert statements[1].startswith('SELECT "widget_message"."role"')  # the earlier turns
    assert "shop_vectors" in statements[2]  # the words and the nearest vectors, one query
    assert statements[3].startswith('SELECT "faq_faqentry"')  # the hits' entries
    assert statements[4].startswith('INSERT INTO "widget_message"')  # the answer
    assert len(statements) == 5 and not commits
    assert prepared.answer.mode == Message.FAQ
    stored = list(conversation.messages.order_by("id").values_list("role", "ask_id"))
    assert stored == [(Message.USER, "ask-1"), (Message.BOT, "ask-1")]

    # A re-sent ask (its INSERT refused by the unique constraint) returns the stored answer and
    # leaves the connection usable, in autocommit as inside a transaction.
    again = prepare(conversation, "ask-1", "Do you deliver to Princeton?", time.monotonic())
    assert again.answer == prepared.answer
    assert conversation.messages.count() == 2
