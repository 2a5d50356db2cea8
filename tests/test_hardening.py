"""Hardening, round two (issue 14), through the real consumer, admin, commands and exports: the
frame budget, lazy conversations, the page address, slots freed on every way out."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async as db

from lib import ratelimit
from tests.support import ANSWER_TIMEOUT, chat_from
from tests.test_limits import QUESTION
from widget.chat import limits
from widget.models import Conversation, Message

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("chat_without_claude"),
]


def slots(ip: str) -> int:
    return len(ratelimit.memory.slots.get(f"conn:{ip}", {}))


def test_frame_budget_is_a_token_bucket():
    budget = limits.FrameBudget(burst=3, per_minute=60)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    budget.stamp -= 1.0  # a second later: one frame more
    assert budget.take() and not budget.take()
    # Frames already waiting behind this one count: 3 tokens cannot cover 1 + 3.
    full = limits.FrameBudget(burst=3, per_minute=60)
    assert not full.take(waiting=3) and full.take(waiting=2) and full.tokens == 2
    off = limits.FrameBudget(burst=0, per_minute=0)
    assert all(off.take(waiting=1000) for _ in range(1000))


async def test_a_client_writing_too_fast_is_closed_with_4008_and_its_slot_freed(
    demo_shop, settings
):
    settings.CHAT_FRAME_BURST = 5
    settings.CHAT_FRAMES_PER_MINUTE = 60
    settings.CHAT_CONNECTIONS_PER_IP = 2
    chat = chat_from(demo_shop.public_key, "192.0.2.40")
    assert (await chat.ws.connect(timeout=ANSWER_TIMEOUT))[0]
    await chat.ready()
    assert slots("192.0.2.40") == 1
    # Within the budget: answered. Then a flood of pings and feedback on a missing answer.
    _, answer = await chat.ask(QUESTION)
    assert answer["type"] == "answer"
    for i in range(200):
        frame = {"type": "ping"} if i % 2 else {"type": "feedback", "message": 999, "value": "up"}
        await chat.send(frame)
    outputs = []
    while True:
        output = await chat.ws.receive_output(timeout=ANSWER_TIMEOUT)
        outputs.append(output)
        if output["type"] == "websocket.close":
            break
    assert output == {"type": "websocket.close", "code": 4008}
    # 200 frames waiting and 4 tokens left: closed at the first of them, none answered.
    replies = [o for o in outputs if o["type"] == "websocket.send"]
    assert replies == []
    assert await chat.ws.receive_nothing(timeout=0.3)
    assert slots("192.0.2.40") == 0  # freed at the close, before the client even goes
    await chat.ws.disconnect()
    # The answered question and its conversation are kept; the flood stored nothing.
    assert await db(Message.objects.count)() == 2
    assert await db(Conversation.objects.count)() == 1
    # Two new sockets from that address (the limit) connect at once.
    again = [chat_from(demo_shop.public_key, "192.0.2.40") for _ in range(2)]
    for other in again:
        assert (await other.ws.connect(timeout=ANSWER_TIMEOUT))[0]
        assert (await other.ready())["type"] == "ready"
    for other in again:
        await other.ws.disconnect()
    assert slots("192.0.2.40") == 0


async def test_a_client_waiting_for_each_reply_gets_the_burst_then_4008(demo_shop, settings):
    settings.CHAT_FRAME_BURST = 10
    settings.CHAT_FRAMES_PER_MINUTE = 6  # one every 10 s: nothing refills during the test
    chat = chat_from(demo_shop.public_key, "192.0.2.44")
    await chat.ws.connect(timeout=ANSWER_TIMEOUT)
    await chat.ready()
    for _ in range(10):
        await chat.send({"type": "ping"})
        assert await chat.recv() == {"type": "pong"}
    await chat.send({"type": "ping"})
    assert await chat.ws.receive_output(ANSWER_TIMEOUT) == {
        "type": "websocket.close",
        "code": 4008,
    }
    await chat.ws.disconnect()
    assert slots("192.0.2.44") == 0


async def test_a_cancelled_consumer_still_frees_its_slot(demo_shop):
    """Daphne cancels a consumer that takes too long to shut down; disconnect() then never runs,
    so the slot must be freed on that path too."""
    chat = chat_from(demo_shop.public_key, "192.0.2.41")
    await chat.ws.connect(timeout=ANSWER_TIMEOUT)
    await chat.ready()
    assert slots("192.0.2.41") == 1
    chat.ws.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await chat.ws.future
    assert slots("192.0.2.41") == 0


async def test_connecting_and_closing_stores_no_conversation(demo_shop):
    for _ in range(30):
        chat = chat_from(demo_shop.public_key, "192.0.2.42", query="page=https://evil.example/x")
        await chat.ws.connect(timeout=ANSWER_TIMEOUT)
        ready = await chat.ready()
        # Feedback before any ask: nothing to rate, nothing stored.
        await chat.send({"type": "feedback", "message": 1, "value": "down"})
        assert (await chat.recv())["code"] == "bad_request"
        await chat.ws.disconnect()
    assert await db(Conversation.objects.count)() == 0
    # The first ask stores the conversation under the id the ready frame gave.
    chat = chat_from(demo_shop.public_key, "192.0.2.42")
    await chat.ws.connect(timeout=ANSWER_TIMEOUT)
    ready = await chat.ready()
    await chat.ask(QUESTION)
    await chat.ask("What are your opening hours?")
    await chat.ws.disconnect()
    assert await db(list)(Conversation.objects.values_list("pk", flat=True)) == [
        __import__("uuid").UUID(ready["conversation"])
    ]


@pytest.mark.parametrize(
    "page, origin, stored",
    [
        ("https://shop.example/roses?x=1", None, "https://shop.example/roses?x=1"),
        ("javascript:alert(1)", None, ""),
        ("data:text/html,<script>alert(1)</script>", None, ""),
        ('=HYPERLINK("http://evil.example")', None, ""),
        ("http://", None, ""),
        ("https://shop.example/" + "a" * 600, None, ""),
        ("ftp://shop.example/", "http://localhost:8000", "http://localhost:8000"),
    ],
)
async def test_the_page_is_stored_only_as_an_http_url(demo_shop, settings, page, origin, stored):
    settings.SITE_URL = "http://localhost:8000"
    headers = [(b"origin", origin.encode())] if origin else []
    from urllib.parse import quote

    chat = chat_from(demo_shop.public_key, "192.0.2.43", headers, query=f"page={quote(page)}")
    await chat.ws.connect(timeout=ANSWER_TIMEOUT)
    ready = await chat.ready()
    await chat.ask(QUESTION)
    await chat.ws.disconnect()
    conversation = await db(Conversation.objects.get)(pk=ready["conversation"])
    assert conversation.page_url == stored
