"""A frame flood through the real server (issue 14): daphne as a child process on loopback, the test
run's own database, the real model. Two attacker sockets write as fast as they can and reconnect
when closed (harness/flood.py, in a process of its own) while a customer keeps asking.

What must hold: each flooding socket is closed by the server with 4008; the customer is answered
throughout, every ask of it; the server's resident memory comes back to within 50 MB; 20 new
sockets from the flooding address connect afterwards. How fast (a flooding socket closed within
two seconds, the customer's median latency during the flood within 3x its normal one) is a speed
target: bench/bench_flood.py prints those figures against it, a timed assertion here would fail
on a busy machine. Bounded in time: a 5 s flood, 1 s of baseline asks after the warm-up (the
baseline latency is bench_flood's figure, never asserted here: its 5 s cost this test 4 s of a
core), and timeouts on every wait."""

from __future__ import annotations

import asyncio

import pytest

from harness import flood
from tests.support import daphne_server, server_environment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

START_TIMEOUT = 120  # model loading in a fresh process on a busy machine


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = server_environment(
            REDIS_URL="",
            # Everyone here is 127.0.0.1: the customer's asks must not hit the per-address ask
            # limit the attackers share with it. The frame budget and connection cap stay at their
            # defaults (30 + 60/min, 20 sockets).
            CHAT_ASKS_PER_IP_PER_MINUTE="0",
        )
    with daphne_server(env, START_TIMEOUT) as daphne:
        yield daphne


def test_a_frame_flood_is_closed_fast_and_nobody_else_notices(server, demo_shop):
    result = asyncio.run(
        asyncio.wait_for(
            flood.scenario(server.ws_url, demo_shop.public_key, server.process.pid, 5, 1), 120
        )
    )
    print(result)
    attack = result["flood"]
    assert attack["sockets"] >= 2 and attack["closed"] >= 2
    # The server closes a flooding socket with 4008. The attacker never reads, so now and then its
    # client misses the close frame behind the unread ones and sees 1006 (harness/flood.py; seen
    # in CI with two test workers on two cores): the server's code is what the others saw.
    assert set(attack["codes"]) <= {"4008", "1006"}, attack
    assert attack["codes"]["4008"] >= max(2, attack["closed"] - 1), attack
    # Answered during the flood (harness.flood.customer fails on an ask without its answer).
    assert result["during_asks"] >= 1, result
    assert result["rss_after_mb"] - result["rss_before_mb"] <= 50, result
    assert result["new_sockets_ready"] == 20, result
    assert "took too long to shut down" not in server.log_tail(100_000)
