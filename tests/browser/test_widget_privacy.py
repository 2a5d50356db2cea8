"""
What the widget does in a customer's browser before and after the chat is opened (docs/privacy.md,
"What the widget keeps in the customer's browser"), in Debian's headless Chromium on another
website embedding the snippet, against the real server: before the customer opens the chat,
nothing in localStorage or sessionStorage, no websocket, no cookie, no request but widget.js;
once opened, the shop's privacy notice arrives in `ready`, is kept with the shop's settings, and
is shown before the first message, linked to the shop's privacy page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import WebSocket, expect

from faq.models import Shop
from tests.browser.conftest import ANSWER_TIMEOUT, LISTED_HOST, w
from tests.support import make_demo_shop

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

NOTICE = {
    "text": "We keep this chat for 90 days to answer you.",
    "url": "https://petal.example/privacy",
}


@pytest.fixture(scope="module")
def shop_site(request, django_db_blocker, shared_server, other_sites) -> Iterator[dict[str, Any]]:
    """The demo shop with a privacy notice (committed: the server is another process), the
    shared server, and another website embedding the widget."""
    server = shared_server  # boots, if it is the first to, while this process builds the shop
    demo_texts_embedded = request.getfixturevalue("demo_texts_embedded")
    values: dict[str, str] = {}
    website = other_sites(LISTED_HOST, values)
    with django_db_blocker.unblock():
        shop = make_demo_shop(
            demo_texts_embedded,
            name="Petal & Stem (privacy)",
            allowed_origins=website,
            privacy_notice=NOTICE["text"],
            privacy_url=NOTICE["url"],
        )
    values.update(SERVER=server.url, SHOP=shop.public_key)
    server.wait_ready()
    yield {"shop": shop, "server": server, "website": website}
    with django_db_blocker.unblock():
        Shop.objects.filter(pk=shop.pk).delete()


def test_nothing_is_stored_or_opened_before_the_chat_is_and_the_notice_comes_in_ready(
    browser, shop_site
):
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    sockets: list[WebSocket] = []
    received: list[dict] = []

    def on_socket(ws: WebSocket) -> None:
        sockets.append(ws)
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))

    page.on("websocket", on_socket)
    server, key = shop_site["server"].url, shop_site["shop"].public_key
    try:
        page.goto(f"{shop_site['website']}/plain.html")
        expect(w(page, "sb-launcher")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert sockets == []
        assert page.evaluate("Object.keys(localStorage)") == []
        assert page.evaluate("Object.keys(sessionStorage)") == []
        assert page.evaluate("document.cookie") == ""
        assert context.cookies() == []
        assert [url for url in requested if url.startswith(server)] == [f"{server}/widget.js"]

        w(page, "sb-launcher").click()
        expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)
        assert len(sockets) == 1
        ready = next(frame for frame in received if frame["type"] == "ready")
        assert ready["bot"]["privacy"] == NOTICE
        saved = json.loads(page.evaluate(f"localStorage.getItem('shopbot:{key}')"))
        assert saved["bot"]["privacy"] == NOTICE
        notice = w(page, "sb-privacy")
        expect(notice).to_be_visible()
        expect(notice).to_have_text(NOTICE["text"])
        expect(notice.get_by_role("link")).to_have_attribute("href", NOTICE["url"])
        assert page.evaluate("Object.keys(localStorage)") == [f"shopbot:{key}"]
        assert context.cookies() == []  # nor any cookie once it is open
        assert problems == []
    finally:
        context.close()
