"""A local fake of the Anthropic Messages API, for tests.

Real HTTP/1.1 on 127.0.0.1 (OS-chosen port), real Server-Sent Events, served
from a background thread, so the real ``anthropic`` SDK can be pointed at it
with ``base_url``.  Nothing here ever talks to the real API.

Usage::

    from tests.fake_anthropic import FakeAnthropic

    with FakeAnthropic() as fake:
        fake.script(text_chunks=["We deliver ", "to Princeton."], cite=[(0, "We deliver to P.")])
        fake.script(error="rate_limit")           # the request after that gets a 429
        client = anthropic.AsyncAnthropic(api_key="test", base_url=fake.base_url, max_retries=0)
        ...
        assert fake.requests[0].json["model"] == "claude-..."

Each request to ``POST /v1/messages`` takes the next scripted scenario (FIFO);
when none is queued the *default* scenario is used, which answers from the
request's ``search_result`` blocks and cites the first one.

Event sequence of a successful stream (one text block)::

    message_start
    content_block_start   (content_block {"type":"text","text":"", "citations": []?})
    ping
    content_block_delta   (text_delta) x len(text_chunks)
    content_block_delta   (citations_delta) x len(cite)
    content_block_stop
    message_delta         (stop_reason, usage.output_tokens)
    message_stop

Several blocks (``blocks=[...]``) repeat the content_block_* part per block.

What the real SDK (anthropic 2.11, which uses its own ``httpx2``) raises for each failure, so
callers know what to catch -- ``(anthropic.APIError, httpx2.TransportError)`` covers them all:

    rate_limited (429)            anthropic.RateLimitError
    overloaded (529)              anthropic.OverloadedError (an InternalServerError)
    server_error (500)            anthropic.InternalServerError
    stall at "headers"            anthropic.APITimeoutError
    stall after message_start     httpx2.ReadTimeout (not wrapped by the SDK)
    cut mid-stream                httpx2.RemoteProtocolError (not wrapped by the SDK)
    SSE "event: error"            anthropic.APIStatusError with status_code 200, .type set
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeAnthropic",
    "Scenario",
    "Block",
    "RecordedRequest",
    "search_results_in",
    "fake_anthropic",
]

# error kind -> (HTTP status, error.type, error.message)
ERRORS = {
    "invalid_request": (400, "invalid_request_error", "Invalid request."),
    "authentication": (401, "authentication_error", "invalid x-api-key"),
    "permission": (
        403,
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    "not_found": (404, "not_found_error", "Not found."),
    "request_too_large": (
        413,
        "request_too_large",
        "Request exceeds the maximum allowed number of bytes.",
    ),
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit.",
    ),
    "api_error": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
}

# Scenario.error values that are not plain HTTP error responses.
STREAM_FAILURES = ("stall", "cut", "sse_error")

CiteSpec = tuple | dict


@dataclass
class Block:
    """One text content block of the answer."""

    text_chunks: Sequence[str]
    # Each item: (search_result_index, cited_text) or a dict overriding any citation field
    # (type, source, title, cited_text, search_result_index, start_block_index, end_block_index).
    cite: Sequence[CiteSpec] = ()
    # Put "citations": [] in content_block_start.  None = yes if cite is non-empty or
    # the request enabled citations on a search_result.
    citations: bool | None = None


@dataclass
class Scenario:
    """What the fake answers to one request.  All fields are optional."""

    # --- content (ignored for HTTP errors) ---
    text_chunks: Sequence[str] | None = None  # None: build the default answer from search results
    # None: default (cite search result 0 if citations enabled)
    cite: Sequence[CiteSpec] | None = None
    citations: bool | None = None  # see Block.citations
    blocks: Sequence[Block] | None = None  # several text blocks; overrides text_chunks/cite
    stop_reason: str = "end_turn"
    model: str | None = None  # None: echo the request's model
    message_id: str | None = None  # None: "msg_fake_<n>"
    input_tokens: int | None = None  # None: len(request body) // 4
    output_tokens: int | None = None  # None: word count of the answer
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ping: bool = True  # send a `ping` event after the first content_block_start
    delay: float = 0.0  # seconds between SSE events

    # --- failures ---
    # None | "rate_limit" (429) | "overloaded" (529) | "api_error" (500) | any key of ERRORS
    # | "stall" | "cut" | "sse_error"
    error: str | None = None
    status: int | None = None  # override the HTTP status of an error response
    error_type: str | None = None  # override error.type (also for sse_error)
    error_message: str | None = None
    retry_after: int | float | str | None = None  # 429 default: 1 (seconds)
    retry_after_ms: int | float | None = None
    headers: dict | None = None  # extra response headers
    # stall: where to stop sending: "headers" (before the HTTP status line),
    # "message_start" (right after it) or "delta" (after `after` text deltas).
    stall_at: str = "message_start"
    stall_seconds: float = 30.0  # stop() always ends a stall early
    after: int = 1  # cut / sse_error / stall_at="delta": number of text deltas sent first

    def __post_init__(self) -> None:
        if (
            self.error is not None
            and self.error not in ERRORS
            and self.error not in STREAM_FAILURES
        ):
            known = sorted(ERRORS) + list(STREAM_FAILURES)
            raise ValueError(f"unknown error {self.error!r}; expected one of {known}")
        if self.stall_at not in ("headers", "message_start", "delta"):
            raise ValueError(
                f"stall_at must be 'headers', 'message_start' or 'delta', not {self.stall_at!r}"
            )


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict  # lower-cased names
    json: Any  # parsed body (None if not JSON)
    raw_body: bytes = b""
    scenario: Scenario | None = None  # what was answered ("rejected" requests: None)

    @property
    def api_key(self) -> str | None:
        """The credential sent: ``x-api-key``, else the token of ``Authorization: Bearer``.

        (anthropic 2.11.0 sends ``api_key=`` as ``Authorization: Bearer <key>``, not ``x-api-key``.)
        """
        return _credential(self.headers)

    @property
    def anthropic_version(self) -> str | None:
        return self.headers.get("anthropic-version")

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.json, dict) and self.json.get("stream"))

    @property
    def search_results(self) -> list:
        return search_results_in(self.json)


def _credential(headers: dict) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return auth[7:].strip()
    return None


def search_results_in(body: Any) -> list:
    """All ``search_result`` blocks of a Messages request, in the order the API
    numbers them for ``search_result_index`` (across messages, including those
    nested in ``tool_result`` content)."""
    found: list = []

    def walk(blocks: Any) -> None:
        if not isinstance(blocks, list):
            return
        for b in blocks:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "search_result":
                found.append(b)
            elif b.get("type") == "tool_result":
                walk(b.get("content"))

    if isinstance(body, dict):
        for m in body.get("messages") or []:
            if isinstance(m, dict):
                walk(m.get("content"))
    return found


def _sr_text(sr: dict, start: int = 0, end: int | None = None) -> str:
    content = [c for c in sr.get("content") or [] if isinstance(c, dict)]
    return "".join(c.get("text", "") for c in content[start:end])


def _citations_enabled(sr: dict) -> bool:
    c = sr.get("citations")
    return isinstance(c, dict) and bool(c.get("enabled"))


def _split_chunks(text: str, n: int = 3) -> list:
    """Split text into about n chunks on word boundaries, losslessly."""
    words = text.split(" ")
    if len(words) <= 1:
        return [text]
    size = max(1, -(-len(words) // n))
    chunks = []
    for i in range(0, len(words), size):
        part = " ".join(words[i : i + size])
        if i + size < len(words):
            part += " "
        chunks.append(part)
    return chunks


class _ClientGone(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # safety net; stop() joins handler threads itself
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, fake: FakeAnthropic):
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request, client_address):  # track threads + sockets for stop()
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            daemon=True,
            name=f"fake-anthropic-conn-{client_address[1]}",
        )
        with self.fake._lock:
            self.fake._conns[request] = t
        t.start()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.fake._lock:
                self.fake._conns.pop(request, None)

    def handle_error(self, request, client_address):  # keep pytest output clean
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked SSE, like the real API
    server: _Server

    def log_message(self, format, *args):  # silence stderr logging
        pass

    # ---------------------------------------------------------------- plumbing
    @property
    def fake(self) -> FakeAnthropic:
        return self.server.fake

    def _send_json(self, status: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", self._request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, status: int, etype: str, message: str, headers: dict | None = None
    ) -> None:
        body = {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": self._request_id,
        }
        self._send_json(status, body, headers)

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as e:
            raise _ClientGone() from e

    def _event(self, name: str, data: dict) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _abort(self) -> None:
        """Drop the connection without finishing the chunked body."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _sleep(self, seconds: float) -> bool:
        """Sleep without blocking stop(); False if the server is stopping."""
        if seconds <= 0:
            return not self.fake._stopping.is_set()
        return not self.fake._stopping.wait(seconds)

    # ---------------------------------------------------------------- routing
    def do_GET(self) -> None:
        self._request_id = f"req_fake_{uuid.uuid4().hex[:20]}"
        self._read_body()
        self._send_error(404, "not_found_error", f"Not found: {self.path}")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        self._request_id = f"req_fake_{uuid.uuid4().hex[:20]}"
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        rec = RecordedRequest(method="POST", path=path, headers=headers, json=body, raw_body=raw)
        self.fake._record(rec)

        if path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return self._send_error(404, "not_found_error", f"Not found: {path}")
        api_key = _credential(headers)
        if not api_key:
            return self._send_error(401, "authentication_error", "x-api-key header is required")
        if self.fake.api_key is not None and api_key != self.fake.api_key:
            return self._send_error(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return self._send_error(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        if not isinstance(body, dict):
            return self._send_error(
                400, "invalid_request_error", "Request body must be a JSON object"
            )
        missing = [k for k in ("model", "messages") if k not in body]
        if path == "/v1/messages" and "max_tokens" not in body:
            missing.append("max_tokens")
        if missing:
            return self._send_error(400, "invalid_request_error", f"{missing[0]}: Field required")
        if path == "/v1/messages/count_tokens":
            return self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})

        sc = self.fake._next_scenario()
        rec.scenario = sc
        try:
            self._answer(sc, body, len(raw))
        except _ClientGone:
            self.close_connection = True

    # ---------------------------------------------------------------- answers
    def _answer(self, sc: Scenario, body: dict, body_len: int) -> None:
        if sc.error and sc.error not in STREAM_FAILURES:
            if sc.error not in ERRORS:
                raise ValueError(f"unknown error kind {sc.error!r}")
            status, etype, msg = ERRORS[sc.error]
            headers = dict(sc.headers or {})
            if sc.error == "rate_limit" or sc.retry_after is not None:
                headers.setdefault("retry-after", 1 if sc.retry_after is None else sc.retry_after)
            if sc.retry_after_ms is not None:
                headers.setdefault("retry-after-ms", sc.retry_after_ms)
            if sc.error in ("overloaded", "api_error"):
                headers.setdefault("x-should-retry", "true")
            return self._send_error(
                sc.status or status, sc.error_type or etype, sc.error_message or msg, headers
            )

        if sc.error == "stall" and sc.stall_at == "headers":
            self._sleep(sc.stall_seconds)
            self._abort()
            return

        message, blocks = self.fake._build_message(sc, body, body_len, self._request_id)
        if not body.get("stream"):
            return self._send_json(200, message, sc.headers)
        self._stream(sc, message, blocks)

    def _stream(self, sc: Scenario, message: dict, blocks: list) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", self._request_id)
        for k, v in (sc.headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()

        usage = message["usage"]
        start_msg = dict(message, content=[], stop_reason=None, stop_sequence=None)
        start_msg["usage"] = dict(usage, output_tokens=1)
        events_sent = 0

        def emit(name: str, data: dict) -> None:
            nonlocal events_sent
            if events_sent and sc.delay and not self._sleep(sc.delay):
                raise _ClientGone()
            self._event(name, data)
            events_sent += 1

        emit("message_start", {"type": "message_start", "message": start_msg})
        if sc.error == "stall" and sc.stall_at == "message_start":
            self._sleep(sc.stall_seconds)
            return self._abort()

        text_deltas = 0
        for index, (block_json, chunks, citations) in enumerate(blocks):
            start_block = {"type": "text", "text": ""}
            if "citations" in block_json:
                start_block["citations"] = []
            emit(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start_block},
            )
            if index == 0 and sc.ping:
                emit("ping", {"type": "ping"})
            for chunk in chunks:
                if sc.error in ("cut", "sse_error") and text_deltas >= sc.after:
                    return self._fail_mid_stream(sc)
                if sc.error == "stall" and sc.stall_at == "delta" and text_deltas >= sc.after:
                    self._sleep(sc.stall_seconds)
                    return self._abort()
                emit(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                )
                text_deltas += 1
            for citation in citations:
                emit(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "citations_delta", "citation": citation},
                    },
                )
            emit("content_block_stop", {"type": "content_block_stop", "index": index})

        if sc.error in ("cut", "sse_error", "stall"):  # fewer deltas than `after`: fail at the end
            if sc.error == "stall":
                self._sleep(sc.stall_seconds)
                return self._abort()
            return self._fail_mid_stream(sc)

        emit(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
        emit("message_stop", {"type": "message_stop"})
        self._chunk(b"")  # terminating zero-length chunk: "0\r\n\r\n"

    def _fail_mid_stream(self, sc: Scenario) -> None:
        if sc.error == "cut":
            return self._abort()
        etype = sc.error_type or "overloaded_error"
        msg = sc.error_message or "Overloaded"
        self._event(
            "error",
            {
                "type": "error",
                "error": {"type": etype, "message": msg},
                "request_id": self._request_id,
            },
        )
        self._chunk(b"")


class FakeAnthropic:
    """Fake Anthropic Messages API on 127.0.0.1:<random port>.

    ``FakeAnthropic(api_key=None, default=None, start=True)``

    * ``api_key``: if set, requests whose credential (``x-api-key`` header, or the
      token of ``Authorization: Bearer``) differs get 401.  Requests with no
      credential at all always get 401; without ``anthropic-version``, 400.
    * ``default``: the Scenario used when nothing is queued (default: answer
      from the request's search results).
    """

    def __init__(
        self, *, api_key: str | None = None, default: Scenario | None = None, start: bool = True
    ):
        self.api_key = api_key
        self.default = default or Scenario()
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque = deque()
        self._requests: list = []
        self._conns: dict = {}
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> FakeAnthropic:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, end stalls, drop open connections, join all threads."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for _, t in conns:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for _, t in conns if t.is_alive()]
        if alive:
            raise RuntimeError(f"FakeAnthropic: handler threads did not stop: {alive}")

    close = stop

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not running"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """e.g. ``http://127.0.0.1:54321`` -- pass as ``base_url`` to the SDK."""
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- scripting
    def script(self, *scenarios: Scenario, **options: Any) -> FakeAnthropic:
        """Queue the next response(s), FIFO.

        ``fake.script(text_chunks=[...], cite=[(0, "cited")])`` queues one Scenario built
        from keyword options; ``fake.script(Scenario(...), Scenario(...))`` queues several.
        Returns self, so calls chain.
        """
        if scenarios and options:
            raise TypeError("pass Scenario objects or keyword options, not both")
        items = list(scenarios) if scenarios else [Scenario(**options)]
        with self._lock:
            self._queue.extend(items)
        return self

    # shorthands for the failure modes
    def rate_limited(self, retry_after: int | float | str = 1, **kw: Any) -> FakeAnthropic:
        return self.script(error="rate_limit", retry_after=retry_after, **kw)

    def overloaded(self, **kw: Any) -> FakeAnthropic:
        return self.script(error="overloaded", **kw)

    def server_error(self, **kw: Any) -> FakeAnthropic:
        return self.script(error="api_error", **kw)

    def stall(self, seconds: float = 30.0, at: str = "message_start", **kw: Any) -> FakeAnthropic:
        return self.script(error="stall", stall_seconds=seconds, stall_at=at, **kw)

    def cut(self, after: int = 1, **kw: Any) -> FakeAnthropic:
        return self.script(error="cut", after=after, **kw)

    def sse_error(
        self, after: int = 1, error_type: str = "overloaded_error", **kw: Any
    ) -> FakeAnthropic:
        return self.script(error="sse_error", after=after, error_type=error_type, **kw)

    def pending(self) -> int:
        """Number of queued scenarios not yet used."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget queued scenarios and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    # ---------------------------------------------------------------- inspection
    @property
    def requests(self) -> list:
        """Snapshot of recorded requests (every POST, including rejected ones)."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list:
        """Block until at least n requests were received (for cross-thread tests)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(f"got {len(self._requests)} requests, wanted {n}")
            return list(self._requests)

    # ---------------------------------------------------------------- internals
    def _record(self, rec: RecordedRequest) -> None:
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    def _next_scenario(self) -> Scenario:
        with self._lock:
            return self._queue.popleft() if self._queue else replace(self.default)

    def _build_message(self, sc: Scenario, body: dict, body_len: int, request_id: str):
        """Returns (full Message JSON, [(block_json, text_chunks, citations)])."""
        results = search_results_in(body)
        any_enabled = any(_citations_enabled(sr) for sr in results)

        if sc.blocks is not None:
            specs = list(sc.blocks)
        elif sc.text_chunks is not None:
            specs = [Block(list(sc.text_chunks), list(sc.cite or ()), sc.citations)]
        elif results:
            first = results[0]
            text = _sr_text(first)
            answer = f"According to {first.get('title') or 'our FAQ'}: {text}"
            default_cite = [(0, _sr_text(first, 0, 1))] if _citations_enabled(first) else []
            specs = [
                Block(
                    _split_chunks(answer),
                    list(sc.cite) if sc.cite is not None else default_cite,
                    sc.citations,
                )
            ]
        else:
            specs = [
                Block(
                    _split_chunks("Sorry, I couldn't find that in the FAQ."),
                    list(sc.cite or ()),
                    sc.citations,
                )
            ]

        blocks, content = [], []
        for spec in specs:
            citations = [self._citation(c, results) for c in spec.cite]
            on = spec.citations if spec.citations is not None else bool(citations or any_enabled)
            text = "".join(spec.text_chunks)
            block_json: dict = {"type": "text", "text": text}
            if on:
                block_json["citations"] = citations
            content.append(block_json)
            blocks.append((block_json, list(spec.text_chunks), citations))

        full_text = "".join(b["text"] for b in content)
        message = {
            "id": sc.message_id or f"msg_fake_{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": sc.model or body.get("model"),
            "content": content,
            "stop_reason": sc.stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": sc.input_tokens
                if sc.input_tokens is not None
                else max(1, body_len // 4),
                "cache_creation_input_tokens": sc.cache_creation_input_tokens,
                "cache_read_input_tokens": sc.cache_read_input_tokens,
                "output_tokens": sc.output_tokens
                if sc.output_tokens is not None
                else max(1, len(full_text.split())),
                "service_tier": "standard",
            },
        }
        return message, blocks

    @staticmethod
    def _citation(spec: CiteSpec, results: list) -> dict:
        if isinstance(spec, dict):
            idx = spec.get("search_result_index", 0)
            cited = spec.get("cited_text")
        else:
            idx, cited = spec[0], spec[1]
        sr = results[idx] if 0 <= idx < len(results) else {}
        start, end = 0, 1
        contents = [c for c in sr.get("content") or [] if isinstance(c, dict)]
        if cited is not None:
            for i, c in enumerate(contents):
                if cited and cited in c.get("text", ""):
                    start, end = i, i + 1
                    break
        else:
            cited = _sr_text(sr, 0, 1)
        citation = {
            "type": "search_result_location",
            "source": sr.get("source", f"unknown:{idx}"),
            "title": sr.get("title"),
            "cited_text": cited,
            "search_result_index": idx,
            "start_block_index": start,
            "end_block_index": end,
        }
        if isinstance(spec, dict):
            citation.update(spec)
        return citation


def fake_anthropic() -> Iterator[FakeAnthropic]:
    """Generator for a pytest fixture::

    # conftest.py
    import pytest
    from tests.fake_anthropic import fake_anthropic as _fake_anthropic
    fake_anthropic = pytest.fixture(_fake_anthropic)
    """
    fake = FakeAnthropic()
    try:
        yield fake
    finally:
        fake.stop()
