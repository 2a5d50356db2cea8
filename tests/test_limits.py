"""Abuse limits (widget/chat/limits.py) through the real consumer, the real test database and the
real embedding model; the Redis counters against the real Redis (a database number of their own);
the monthly Claude token budget; and the production settings (`check --deploy`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import deque
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from channels.db import database_sync_to_async as db
from django.utils import timezone

from lib import ratelimit
from tests.fake_anthropic import FakeAnthropic
from tests.support import (
    ANSWER_TIMEOUT,
    REDIS_TEST_URL,
    Chat,
    chat_from,
    make_demo_shop,
    messages_of,
    require_redis,
)
from widget.chat import limits
from widget.models import Conversation, Message, month_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("chat_without_claude"),
]

QUESTION = "Do you deliver to Princeton?"
TTL = limits.CONNECTION_TTL_SECONDS


@pytest.fixture
def redis_db(settings):
    client = redis.Redis.from_url(require_redis())
    client.flushdb()
    settings.REDIS_URL = REDIS_TEST_URL
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request) -> str:
    """Runs the test twice: with the limits counted in this process, then in Redis (redis_db)."""
    if request.param == "redis":
        request.getfixturevalue("redis_db")
    return request.param


async def refused(chat: Chat, text: str = QUESTION, ask_id: str | None = None) -> dict:
    ask_id = ask_id or uuid.uuid4().hex
    await chat.send({"type": "ask", "id": ask_id, "text": text})
    frame = await chat.recv()
    assert frame["type"] == "error" and frame["id"] == ask_id, frame
    return frame


async def still_alive(chat: Chat) -> None:
    await chat.send({"type": "ping"})
    assert await chat.recv() == {"type": "pong"}


# --- Client address ---------------------------------------------------------------------------


def test_the_client_address_is_the_peer_unless_a_trusted_header_is_configured(settings):
    scope = {"client": ("203.0.113.9", 1234), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
    settings.TRUSTED_PROXY_HEADER = ""
    assert limits.client_ip(scope) == "203.0.113.9"  # a client-sent header is never believed

    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    # The client can put anything first; our proxy appends the address it saw, last.
    scope["headers"] = [(b"X-Forwarded-For", b"6.6.6.6, 198.51.100.7")]
    assert limits.client_ip(scope) == "198.51.100.7"
    scope["headers"] = []  # header missing: fall back to the peer
    assert limits.client_ip(scope) == "203.0.113.9"
    assert limits.client_ip({"headers": []}) is None


# --- Limits through the consumer -------------------------------------------------------------


async def test_asks_per_connection_per_minute(demo_shop, settings):
    settings.CHAT_ASKS_PER_CONNECTION_PER_MINUTE = 2
    async with chat_from(demo_shop.public_key, "192.0.2.1") as chat:
        conversation = (await chat.ready())["conversation"]
        await chat.ask(QUESTION)
        await chat.ask("What are your opening hours?")
        error = await refused(chat)
        assert error["code"] == "rate_limited" and "wait" in error["message"]
        await still_alive(chat)
    # A new connection has its own allowance.
    async with chat_from(demo_shop.public_key, "192.0.2.1") as other:
        await other.ready()
        _, answer = await other.ask(QUESTION)
        assert answer["type"] == "answer"
    assert len(await messages_of(conversation)) == 4  # the refused ask stored nothing


@pytest.mark.usefixtures("backend")
async def test_asks_per_ip_per_minute_span_connections_and_spare_other_addresses(
    demo_shop, settings
):
    settings.CHAT_ASKS_PER_IP_PER_MINUTE = 3
    key = demo_shop.public_key
    async with chat_from(key, "192.0.2.2") as first, chat_from(key, "192.0.2.2") as second:
        await first.ready()
        await second.ready()
        await first.ask(QUESTION)
        await first.ask("What are your opening hours?")
        await second.ask(QUESTION)
        error = await refused(second)
        assert error["code"] == "rate_limited"
        assert error["message"] == (
            "Too many messages from your network right now; please wait a minute."
        )
        await still_alive(second)
        # Never one shared limit: another address is answered as usual.
        async with chat_from(key, "192.0.2.3") as stranger:
            await stranger.ready()
            _, answer = await stranger.ask(QUESTION)
            assert answer["mode"] == "faq"


@pytest.mark.usefixtures("backend")
async def test_connections_per_ip_are_capped_with_4429_and_freed_on_close(demo_shop, settings):
    settings.CHAT_CONNECTIONS_PER_IP = 2
    key = demo_shop.public_key
    async with chat_from(key, "192.0.2.4") as first:
        await first.ready()
        async with chat_from(key, "192.0.2.4") as second:
            await second.ready()
            third = chat_from(key, "192.0.2.4")
            connected, _ = await third.ws.connect(timeout=ANSWER_TIMEOUT)
            assert connected  # accepted first, so the browser sees our close code
            error = await third.recv()
            assert (error["type"], error["code"]) == ("error", "rate_limited")
            assert await third.ws.receive_output(ANSWER_TIMEOUT) == {
                "type": "websocket.close",
                "code": 4429,
            }
            await third.ws.disconnect()
            async with chat_from(key, "192.0.2.5") as elsewhere:  # other addresses unaffected
                await elsewhere.ready()
        # The second socket closed: its slot is free again.
        async with chat_from(key, "192.0.2.4") as again:
            await again.ready()
            await still_alive(again)


async def test_a_long_conversation_asks_for_a_new_one_but_keeps_its_answers(demo_shop, settings):
    settings.CHAT_MAX_ASKS_PER_CONVERSATION = 2
    async with Chat(demo_shop.public_key) as chat:
        conversation = (await chat.ready())["conversation"]
        _, first = await chat.ask(QUESTION, "q1")
        await chat.ask("What are your opening hours?", "q2")
        error = await refused(chat, "Do you sell gift cards?", "q3")
        assert error["code"] == "conversation_full"
        assert "start a new conversation" in error["message"]
        assert "(609) 555-0142" in error["message"]  # the shop's contact route
        # A re-sent ask that is already stored still gets its answer, not the limit.
        _, again = await chat.ask(QUESTION, "q1")
        assert again["message"] == first["message"]
    assert len(await messages_of(conversation)) == 4
    async with Chat(demo_shop.public_key) as fresh:  # a new conversation starts from zero
        await fresh.ready()
        _, answer = await fresh.ask("Do you sell gift cards?")
        assert answer["type"] == "answer"


async def test_the_limits_can_be_switched_off(demo_shop, settings):
    settings.CHAT_ASKS_PER_CONNECTION_PER_MINUTE = 0
    settings.CHAT_ASKS_PER_IP_PER_MINUTE = 0
    settings.CHAT_CONNECTIONS_PER_IP = 0
    settings.CHAT_MAX_ASKS_PER_CONVERSATION = 0
    key = demo_shop.public_key
    async with chat_from(key, "192.0.2.6") as a, chat_from(key, "192.0.2.6") as b:
        await a.ready()
        await b.ready()
        for n in range(3):
            await a.ask(QUESTION, f"a{n}")


# --- Redis counters ---------------------------------------------------------------------------


@pytest.mark.parametrize("face", ["sync", "async"])
def test_redis_counters_slide_and_free_slots(redis_db, face):
    """lib/ratelimit.py's one set of Redis operations, through both of its faces (the FAQ page's
    sync one and the chat's async one)."""
    loop = asyncio.new_event_loop()
    if face == "async":
        store, run = ratelimit.AsyncRedisCounters(REDIS_TEST_URL), loop.run_until_complete
    else:
        store, run = ratelimit.RedisCounters(REDIS_TEST_URL), lambda result: result

    assert [run(store.hit("ip:t", 60)) for _ in range(3)] == [1, 2, 3]
    assert run(store.hit("ip:other", 60)) == 1
    # Hits older than the window fall out of it.
    redis_db.zadd(f"{ratelimit.KEY_PREFIX}ip:old", {"a": 1.0, "b": 2.0})
    assert run(store.hit("ip:old", 60)) == 1

    assert run(store.take_slot("conn:t", "s1", 2, TTL))
    assert run(store.take_slot("conn:t", "s2", 2, TTL))
    assert not run(store.take_slot("conn:t", "s3", 2, TTL))
    run(store.free_slot("conn:t", "s1"))
    assert run(store.take_slot("conn:t", "s3", 2, TTL))
    # A slot left behind by a dead process expires; a touched one lives on.
    redis_db.zadd(f"{ratelimit.KEY_PREFIX}conn:dead", {"ghost": 1.0})
    assert run(store.take_slot("conn:dead", "s1", 1, TTL))
    redis_db.zadd(f"{ratelimit.KEY_PREFIX}conn:dead", {"s1": 2.0})
    run(store.touch_slot("conn:dead", "s1"))
    assert redis_db.zscore(f"{ratelimit.KEY_PREFIX}conn:dead", "s1") > 2.0
    run(store.redis.aclose()) if face == "async" else store.redis.close()
    loop.close()


def test_the_memory_counters_slide_and_free_slots():
    store = ratelimit.MemoryCounters()
    assert [store.hit("ip:t", 60) for _ in range(3)] == [1, 2, 3]
    store.windows["ip:old"] = deque([1.0, 2.0])  # hits older than the window fall out of it
    assert store.hit("ip:t", 60) == 4 and store.hit("ip:old", 60) == 1
    assert store.take_slot("conn:t", "s1", 1, TTL)
    assert not store.take_slot("conn:t", "s2", 1, TTL)
    store.free_slot("conn:t", "s1")
    assert store.take_slot("conn:t", "s2", 1, TTL)
    store.slots["conn:t"]["s2"] = 1.0  # a slot not touched within the TTL is forgotten
    assert store.take_slot("conn:t", "s3", 1, TTL)


def test_the_faq_page_and_the_chat_count_in_one_place(settings):
    """One implementation: the sync face's hits are the async face's (memory here; Redis is
    shared anyway)."""
    settings.REDIS_URL = ""
    assert ratelimit.hit("ip:shared") == 1
    assert asyncio.run(ratelimit.async_counters().hit("ip:shared", 60)) == 2


async def test_a_broken_redis_lets_the_chat_through(demo_shop, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.CHAT_ASKS_PER_IP_PER_MINUTE = 1
    settings.CHAT_CONNECTIONS_PER_IP = 1
    async with chat_from(demo_shop.public_key, "192.0.2.7") as chat:
        await chat.ready()
        await chat.ask(QUESTION)
        _, answer = await chat.ask("What are your opening hours?")
        assert answer["type"] == "answer"


# --- Monthly Claude token budget --------------------------------------------------------------


def spend(shop, tokens: int, when=None) -> None:
    conversation = Conversation.objects.create(shop=shop)
    message = Message.objects.create(
        conversation=conversation,
        role=Message.BOT,
        ask_id=uuid.uuid4().hex,
        text="An earlier answer.",
        mode=Message.LLM,
        input_tokens=tokens - tokens // 4,
        output_tokens=tokens // 4,
    )
    if when is not None:
        Message.objects.filter(pk=message.pk).update(created=when)


def test_tokens_used_counts_this_month_and_this_shop_only(demo_shop, demo_texts_embedded):
    other = make_demo_shop(demo_texts_embedded, name="Another shop")
    spend(demo_shop, 1000)
    spend(demo_shop, 400, when=month_start() - timedelta(seconds=1))  # last month
    spend(other, 5000)
    used = Message.objects.claude_tokens(demo_shop)
    assert used == 1000
    demo_shop.monthly_token_budget = 0
    assert demo_shop.within_token_budget(used)  # 0: no limit
    demo_shop.monthly_token_budget = 1001
    assert demo_shop.within_token_budget(used)
    demo_shop.monthly_token_budget = 1000
    assert not demo_shop.within_token_budget(used)
    # The month turns: the budget is whole again.
    next_month = month_start() + timedelta(days=40)
    assert Message.objects.claude_tokens(demo_shop, now=next_month) == 0
    assert month_start(timezone.now()).day == 1


async def test_a_spent_budget_answers_from_the_faq_without_an_error(demo_shop, settings):
    demo_shop.monthly_token_budget = 500
    await db(demo_shop.save)()
    with FakeAnthropic() as fake:
        settings.ANTHROPIC_API_KEY = "test-key"
        settings.ANTHROPIC_BASE_URL = fake.base_url
        fake.script(input_tokens=450, output_tokens=60)  # this answer spends the budget
        async with Chat(demo_shop.public_key) as chat:
            conversation = (await chat.ready())["conversation"]
            _, first = await chat.ask(QUESTION)
            assert first["mode"] == "llm"
            _, second = await chat.ask("What are your opening hours?")
            assert second["mode"] == "hours" and second["sources"]  # the demo's hours, no Claude
            _, third = await chat.ask("Can you recommend a good car mechanic?")
            assert third["mode"] == "fallback"
        assert len(fake.requests) == 1  # Claude was not called again
    stored = await messages_of(conversation)
    assert [m.mode for m in stored if m.role == Message.BOT] == ["llm", "hours", "fallback"]
    assert await db(Message.objects.claude_tokens)(demo_shop) == 510


# --- Production settings ----------------------------------------------------------------------


def deploy_check(**env: str) -> subprocess.CompletedProcess:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "SESSION_", "CSRF_", "DEBUG", "DJANGO_"))
    }
    base.update(
        DEBUG="0",
        SECRET_KEY="k" * 20 + uuid.uuid4().hex + uuid.uuid4().hex,
        ALLOWED_HOSTS="chat.example.com",
        DJANGO_SETTINGS_MODULE="shopbot.settings",
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=Path(__file__).resolve().parent.parent,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_names_only_what_the_proxy_does_and_is_clean_once_configured():
    # TLS ends at the proxy: out of the box only HSTS and the https redirect are left to decide.
    result = deploy_check()
    found = {word for word in result.stderr.split() if word.startswith("(security.W")}
    assert found == {"(security.W004)", "(security.W008)"}, result.stderr

    result = deploy_check(
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        SECURE_SSL_REDIRECT="1",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
