"""Request limits in front of Django and the chat (issue 28), through the project's ASGI
application in this process: a request body over HTTP_MAX_BODY_BYTES is refused with 413 before
Django reads it (a 400 MB POST to /admin/login/ used to be read whole), and a websocket path no
route knows, such as a key over 100 characters, is closed with 4404 instead of failing the
handshake with HTTP 500. (The same through a real daphne: tests/test_server_hardening.py.)"""

from __future__ import annotations

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.db import connection

from shopbot import http_limits
from shopbot.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def post(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    headers = [(b"host", b"localhost"), *headers]
    communicator = HttpCommunicator(application, "POST", path, body=body, headers=headers)
    response = await communicator.get_response(timeout=10)
    return response


async def test_a_body_declared_larger_than_the_limit_is_refused_before_it_is_read(settings):
    assert settings.HTTP_MAX_BODY_BYTES == 6 * 1024 * 1024
    response = await post(
        "/admin/login/",
        b"username=a&password=b",
        [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"400000000"),
        ],
    )
    assert response["status"] == 413
    assert response["body"] == http_limits.TOO_LARGE_BODY


async def test_a_body_without_a_length_is_refused_once_it_passes_the_limit(settings):
    settings.HTTP_MAX_BODY_BYTES = 1024
    response = await post(
        "/admin/login/", b"a" * 2048, [(b"content-type", b"application/x-www-form-urlencoded")]
    )
    assert (response["status"], response["body"]) == (413, http_limits.TOO_LARGE_BODY)


async def test_a_body_within_the_limit_reaches_django(settings):
    body = b"username=a&password=b"
    response = await post(
        "/admin/login/",
        body,
        [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    assert response["status"] == 403  # Django's CSRF check: it read the form


@pytest.mark.parametrize("path", ["/ws/chat/" + "k" * 101 + "/", "/ws/chat/", "/ws/other/"])
async def test_an_unknown_websocket_path_is_closed_with_4404(path):
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect(timeout=10)
    try:
        assert connected
        assert await communicator.receive_output(timeout=10) == {
            "type": "websocket.close",
            "code": 4404,
        }
    finally:
        await communicator.disconnect()


def test_an_http_request_thread_closes_its_connection_when_it_ends(client):
    """The request_finished receiver (what keeps ASGI request threads from holding connections);
    here the test client's request runs on this thread, outside a transaction."""
    client.get("/healthz")
    assert connection.connection is None


def test_every_page_carries_the_content_security_policy(client, demo_shop):
    for url in ["/", f"/faq/{demo_shop.slug}/", "/admin/login/"]:
        policy = client.get(url)["Content-Security-Policy"]
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ]:
            assert directive in policy, (url, policy)
        assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy
