"""
Limits on plain HTTP requests (admin, FAQ page, widget.js, /healthz) under ASGI.

- Database connections: Django runs each sync view of an ASGI request on a thread made for that
  request. A connection that thread opened was kept for DATABASE_CONN_MAX_AGE, on a thread that no
  longer ran, until a garbage collection freed it: a flood of anonymous requests held every
  connection PostgreSQL has. `close_request_connections` (a `request_finished` receiver) closes
  the connections of the request's thread when the request ends. The chat's own worker threads
  (widget/chat/pipeline.py) keep theirs for DATABASE_CONN_MAX_AGE: they live as long as the
  process and answer the next question on the same connection.
- Work at once: `BoundedHTTP` lets at most HTTP_MAX_CONCURRENT_REQUESTS requests of one process
  run at a time (each may hold a thread and a connection); the others wait their turn in the event
  loop, holding neither.
- Request size: a body larger than HTTP_MAX_BODY_BYTES gets HTTP 413 before Django reads it (by
  its Content-Length), or as soon as the bytes read pass the limit (a body without one). Django's
  own DATA_UPLOAD_MAX_MEMORY_SIZE then bounds the form fields and FILE_UPLOAD_MAX_MEMORY_SIZE what
  an upload keeps in memory.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.conf import settings
from django.db import connections

Scope = dict[str, Any]

TOO_LARGE_BODY = b"Request body too large."


def close_request_connections(**kwargs: Any) -> None:
    """The `request_finished` receiver: close this thread's database connections (unless a test
    holds them in a transaction)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse_too_large(send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(TOO_LARGE_BODY)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})


class BoundedHTTP:
    """ASGI middleware for the HTTP side: the request size and the requests at once above."""

    def __init__(self, app) -> None:
        self.app = app
        # asyncio primitives belong to one event loop: daphne runs one, tests one per test.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def slots(self) -> asyncio.Semaphore | None:
        limit = settings.HTTP_MAX_CONCURRENT_REQUESTS
        if limit <= 0:
            return None
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(limit)
        return slots

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = settings.HTTP_MAX_BODY_BYTES
        if most > 0:
            length = _content_length(scope)
            if length is not None and length > most:
                await _refuse_too_large(send)
                return
            receive = self._counted(receive, send, most)
        slots = self.slots()
        if slots is None:
            await self.app(scope, receive, send)
            return
        async with slots:
            await self.app(scope, receive, send)

    @staticmethod
    def _counted(receive, send, most: int):
        """`receive` that answers 413 and tells the application the client left once the body
        read so far passes `most` bytes (a body sent without a Content-Length)."""
        read = 0

        async def counted() -> dict:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > most:
                    await _refuse_too_large(send)
                    return {"type": "http.disconnect"}
            return message

        return counted
