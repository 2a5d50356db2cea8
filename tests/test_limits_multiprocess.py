"""Two real daphne processes sharing one Redis and one database: the per-address limits hold across
them, and a stuck client on one server does not hold up anyone else.

The servers are subprocesses (harness.daphne_process) on free loopback ports, pointed
at this test run's own database through DATABASE_URL (the embedded server's Unix socket) and at a
Redis database of their own (SHOPBOT_TEST_REDIS_URL, default redis://127.0.0.1:6379/7; only that
database is ever flushed). The shop is created by the test and committed (transactional test), so
the servers see it. Clients are real websocket clients (the `websockets` package)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis
from websockets.asyncio.client import connect

from harness.daphne_process import DaphneProcess
from tests.support import (
    REDIS_TEST_URL,
    daphne_pair,
    make_demo_shop,
    require_redis,
    server_environment,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Model loading in two fresh processes on a busy machine: these bound a hang, not speed.
TIMEOUT = 120
QUESTION = "Do you deliver to Princeton?"


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker):
    require_redis()  # skipped without one, failed with SHOPBOT_REQUIRE_REDIS=1
    with django_db_blocker.unblock():
        env = server_environment(
            REDIS_URL=REDIS_TEST_URL,
            CHAT_ASKS_PER_IP_PER_MINUTE="5",
            CHAT_CONNECTIONS_PER_IP="4",
            CHAT_ASKS_PER_CONNECTION_PER_MINUTE="0",
            # The stuck client below writes 20,000 frames on purpose; the frame budget, which would
            # close it after 30, has its own test through a real server (tests/test_flood.py).
            CHAT_FRAME_BURST="0",
        )
    with daphne_pair(env, TIMEOUT) as pair:
        yield pair


@pytest.fixture
def shared_redis():
    client = redis.Redis.from_url(require_redis())
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def shop(transactional_db, demo_texts_embedded):
    return make_demo_shop(demo_texts_embedded)


class Client:
    def __init__(self, server: DaphneProcess, key: str, **options) -> None:
        self.url = f"{server.ws_url}/ws/chat/{key}/"
        self.options = options

    async def __aenter__(self) -> Client:
        self.ws = await connect(self.url, open_timeout=TIMEOUT, **self.options)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def recv(self) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))

    async def ask(self, text: str = QUESTION) -> dict:
        """The answer or error frame for a new ask (deltas skipped)."""
        ask_id = uuid.uuid4().hex
        await self.ws.send(json.dumps({"type": "ask", "id": ask_id, "text": text}))
        while True:
            frame = await self.recv()
            if frame.get("id") == ask_id and frame["type"] in ("answer", "error"):
                return frame


async def test_the_per_address_limits_hold_across_two_server_processes(servers, shop, shared_redis):
    a, b = servers
    key = shop.public_key
    async with Client(a, key) as via_a, Client(b, key) as via_b:
        assert (await via_a.recv())["type"] == "ready"
        assert (await via_b.recv())["type"] == "ready"
        # 5 asks per minute per address: 3 through A, then B has 2 left.
        for _ in range(3):
            assert (await via_a.ask())["type"] == "answer"
        for _ in range(2):
            assert (await via_b.ask())["type"] == "answer"
        sixth = await via_b.ask()
        assert (sixth["type"], sixth["code"]) == ("error", "rate_limited")
        assert (await via_a.ask())["code"] == "rate_limited"  # and on A too
        # 4 sockets per address: 2 open, 2 more anywhere, the 5th is closed with 4429.
        async with Client(a, key) as third, Client(b, key) as fourth:
            assert (await third.recv())["type"] == "ready"
            assert (await fourth.recv())["type"] == "ready"
            async with Client(b, key) as fifth:
                assert (await fifth.recv())["code"] == "rate_limited"
                await asyncio.wait_for(fifth.ws.wait_closed(), TIMEOUT)
                assert fifth.ws.close_code == 4429
    # Both counters live in Redis, not in either process.
    keys = {k.decode() for k in shared_redis.keys("shopbot:limits:*")}
    assert "shopbot:limits:ip:127.0.0.1" in keys


async def test_an_idle_socket_outlives_the_channel_layers_blocking_read(
    servers, shop, shared_redis
):
    # The idle time is what is tested: redis-py 8's default 5 s read timeout used to crash every
    # consumer that received nothing for 5 s while channels_redis blocked in BZPOPMIN.
    async with Client(servers[0], shop.public_key) as idle:
        assert (await idle.recv())["type"] == "ready"
        await asyncio.sleep(7)
        await idle.ws.send('{"type": "ping"}')
        assert await idle.recv() == {"type": "pong"}


async def test_a_stuck_client_does_not_hold_up_the_others(servers, shop, shared_redis):
    a, _ = servers
    key = shop.public_key
    # max_queue=1: once a frame is waiting unread the client stops reading the socket, so the
    # server's pongs pile up in the kernel buffers and then in the server's own. Nor does it read
    # the server's answer to its close: close_timeout bounds that wait (10 s by default) before
    # the connection is dropped, as a stuck client's would be.
    async with Client(a, key, max_queue=1, close_timeout=0.5) as stuck:
        for _ in range(200):
            await stuck.ws.send(
                json.dumps([{"type": "ping", "padding": "x" * 1000}] * 10)
            )  # each answered with a bad_request error frame nobody reads
        for _ in range(20_000):
            await stuck.ws.send('{"type": "ping"}')
        async with Client(a, key) as other:
            assert (await other.recv())["type"] == "ready"
            answer = await other.ask()
            assert answer["type"] == "answer" and answer["mode"] == "faq"
            await other.ws.send('{"type": "ping"}')
            assert await other.recv() == {"type": "pong"}
