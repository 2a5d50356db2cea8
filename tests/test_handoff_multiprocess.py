"""The owner's reply crosses server processes: two real daphne processes share one Redis and one
database; the customer's socket is on one, the owner answers in the admin of the other, and the
reply reaches the customer's open socket through the Redis channel layer.

Servers as in tests/test_limits_multiprocess.py (harness.daphne_process), on a Redis database of
their own (SHOPBOT_TEST_HANDOFF_REDIS_URL, default redis://127.0.0.1:6379/9; only it is flushed).
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import redis
from channels.db import database_sync_to_async as db
from django.contrib.auth.models import User
from websockets.asyncio.client import connect

from harness.daphne_process import DaphneProcess
from tests.support import admin_browser, csrf_of, daphne_pair, make_demo_shop, server_environment
from widget.models import Handoff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REDIS_URL = os.getenv("SHOPBOT_TEST_HANDOFF_REDIS_URL", "redis://127.0.0.1:6379/9")
TIMEOUT = 120


@pytest.fixture(scope="module")
def servers(django_db_setup, django_db_blocker):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    with django_db_blocker.unblock():
        env = server_environment(
            REDIS_URL=REDIS_URL,
            SESSION_COOKIE_SECURE="0",  # plain http on loopback
            CSRF_COOKIE_SECURE="0",
            # Nothing here is answered by the bot: no model to load (loading it keeps a fresh server
            # too busy to accept a websocket within daphne's 5 s handshake timeout).
            EMBEDDING_WARM_ON_START="False",
        )
    try:
        with daphne_pair(env, TIMEOUT) as pair:
            yield pair
    finally:
        client.flushdb()
        client.close()


def owner_replies(server: DaphneProcess, handoff_id: int, text: str) -> None:
    """Sign in to that server's admin as the owner and send the reply, as a browser would."""
    with admin_browser(server, "owner", "a long owner password 1") as browser:
        page = browser.get(f"/admin/widget/handoff/{handoff_id}/change/")
        assert page.status_code == 200 and "Customer request" in page.text
        sent = browser.post(
            f"/admin/widget/handoff/{handoff_id}/change/",
            data={"action": "reply", "text": text, "csrfmiddlewaretoken": csrf_of(page.text)},
        )
        assert sent.status_code == 302


async def test_a_reply_posted_on_one_process_reaches_a_socket_on_the_other(
    servers, transactional_db, demo_texts_embedded
):
    a, b = servers
    shop = await db(make_demo_shop)(demo_texts_embedded)
    owner = await db(User.objects.create_user)(
        "owner", "owner@petal.example", "a long owner password 1", is_staff=True
    )
    await db(User.objects.filter(pk=owner.pk).update)(is_superuser=True)
    async with connect(f"{a.ws_url}/ws/chat/{shop.public_key}/", open_timeout=TIMEOUT) as ws:

        async def recv() -> dict:
            return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))

        assert (await recv())["type"] == "ready"
        await ws.send(
            json.dumps(
                {"type": "handoff", "id": "h1", "email": "ann@example.com", "note": "Sunday?"}
            )
        )
        saved = await recv()
        assert saved["type"] == "handoff_saved"
        await db(owner_replies)(b, saved["handoff"], "Yes, 10 to 4 on Sundays.")
        live = await recv()
    assert live["type"] == "shop_message" and live["text"] == "Yes, 10 to 4 on Sundays."
    handoff = await db(Handoff.objects.get)(pk=saved["handoff"])
    assert handoff.status == Handoff.ANSWERED
