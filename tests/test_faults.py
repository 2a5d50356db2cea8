"""Faults, through the real consumer and the real test database: the database going away under
live connections, Claude stalling and failing for a batch of concurrent asks, and secrets staying
out of the log while it does. (Single Claude failures are covered in tests/test_claude_path.py; a
stuck client next to a live one against real daphne processes in test_limits_multiprocess.py.)"""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async as db
from django.db import connection

from tests import support
from tests.fake_anthropic import FakeAnthropic, Scenario
from tests.support import ANSWER_TIMEOUT, Chat, message_fields, messages_of
from widget.models import Message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("chat_without_claude"),
]

QUESTION = "Do you deliver to Princeton?"


@pytest.fixture
def reconnect_afterwards(transactional_db):
    """The test thread's own connection was cut with the others: drop it before the database
    is flushed, so Django opens a fresh one (what CONN_MAX_AGE=0 does for every request)."""
    yield
    connection.close()


async def test_a_database_outage_gets_unavailable_and_live_sockets_recover(
    demo_shop, reconnect_afterwards
):
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        _, before = await chat.ask(QUESTION, "before")
        await db(support.take_database_down)()
        try:
            await chat.send({"type": "ask", "id": "during", "text": "What are your opening hours?"})
            error = await chat.recv()
            assert error == {
                "type": "error",
                "id": "during",
                "code": "unavailable",
                "message": "Sorry, the chat is having trouble right now. Please try again in a "
                "moment.",
            }
            await chat.send({"type": "feedback", "message": before["message"], "value": "up"})
            assert (await chat.recv())["code"] == "unavailable"
            await chat.send({"type": "ping"})  # the socket is alive, not dead
            assert await chat.recv() == {"type": "pong"}
            # A new visitor meanwhile is told the same, and asked to come back later.
            newcomer = Chat(demo_shop.public_key)
            assert (await newcomer.ws.connect(timeout=ANSWER_TIMEOUT))[0]
            assert (await newcomer.recv())["code"] == "unavailable"
            closed = await newcomer.ws.receive_output(ANSWER_TIMEOUT)
            assert closed == {"type": "websocket.close", "code": 4013}  # try again later
            await newcomer.ws.disconnect()
        finally:
            await db(support.bring_database_back)()
        # Back up: the same socket works again, and the re-sent ask is answered once.
        _, again = await chat.ask("What are your opening hours?", "during")
        assert again["mode"] == "hours"  # from the demo's opening hours
        _, after = await chat.ask("Do you sell gift cards?", "after")
        assert after["type"] == "answer"
    assert await message_fields(conversation, "ask_id", "role") == [
        (ask, role) for ask in ("before", "during", "after") for role in ("user", "bot")
    ]


async def test_claude_stalling_then_failing_under_load_still_answers_every_ask(
    demo_shop, settings, caplog
):
    asks = 8
    settings.ANTHROPIC_TIMEOUT = 1.5
    settings.ANTHROPIC_API_KEY = "sk-ant-never-log-this-key"
    caplog.set_level(logging.DEBUG)
    questions = [QUESTION, "What are your opening hours?", "Do you sell gift cards?"]
    with FakeAnthropic() as fake:
        settings.ANTHROPIC_BASE_URL = fake.base_url
        # A stall outlasts every wait of this test (ANSWER_TIMEOUT a frame): only ANTHROPIC_TIMEOUT
        # can end it in time; leaving the fake ends it for good.
        stall = 10 * ANSWER_TIMEOUT
        failures = [
            Scenario(error="stall", stall_at="headers", stall_seconds=stall),
            Scenario(error="stall", stall_at="message_start", stall_seconds=stall),
            Scenario(error="overloaded"),
            Scenario(error="rate_limit"),
        ]
        fake.script(*(failures[n % len(failures)] for n in range(asks)))

        async def one(n: int) -> tuple[str, dict]:
            async with Chat(demo_shop.public_key) as chat:
                conversation = (await chat.ready())["conversation"]
                _, answer = await chat.ask(questions[n % len(questions)], f"load-{n}")
                return conversation, answer

        results = await asyncio.gather(*(one(n) for n in range(asks)))
        # One request an ask at most: a failure is not retried. (On a busy machine an ask's
        # ANTHROPIC_TIMEOUT may run out before its request is sent: fewer than `asks` then.)
        assert 1 <= len(fake.requests) <= asks
    # Every ask tried Claude, saw it fail, and was answered from the FAQ (each within its
    # ANSWER_TIMEOUT, far shorter than a stall); the opening-hours question from the hours
    # computed for it (mode hours).
    failed = [r for r in caplog.records if r.getMessage().startswith("Claude failed")]
    assert len(failed) == asks, caplog.text
    assert {answer["mode"] for _, answer in results} <= {"faq", "fallback", "hours"}
    for conversation, answer in results:
        stored = await messages_of(conversation)
        assert [(m.role, m.mode) for m in stored] == [("user", ""), ("bot", answer["mode"])]
        assert stored[1].input_tokens == stored[1].output_tokens == 0
    assert await db(Message.objects.filter(role=Message.BOT).count)() == asks
    # No secret in the log, even at DEBUG with every failure logged.
    assert "Claude failed" in caplog.text
    assert "sk-ant-never-log-this-key" not in caplog.text
    assert settings.SECRET_KEY not in caplog.text
