"""
Fixtures for the browser tests: the real ASGI app under daphne, Debian's headless Chromium driven
by Playwright (sync API), and tiny static servers playing "other websites" embedding the widget.

The daphne subprocess reads the pytest test database (DATABASE_URL is built from this session's
own connection), so the data is created committed, outside any test transaction, through
django_db_blocker, and removed again when the module is done.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from playwright.sync_api import Page, WebSocket, expect

from faq.models import FAQEntry, Shop
from harness.daphne_process import DaphneProcess, server_environment
from tests.fake_anthropic import FakeAnthropic
from tests.support import make_demo_shop, server_database_url
from widget.models import Message

ROOT = Path(__file__).resolve().parents[2]
PAGES = Path(__file__).resolve().parent / "pages"
# Where tests put the screenshots they take: with SHOPBOT_SAVE_SCREENSHOTS=1 they replace the
# README's in docs/screenshots/; otherwise a test run leaves the tree clean.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("SHOPBOT_SAVE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "shopbot-screenshots"
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Loopback addresses other than 127.0.0.1 are other websites: ALLOWED_HOSTS names 127.0.0.1 only,
# so the server treats these as foreign origins (Linux routes all of 127/8 to loopback).
LISTED_HOST = "127.0.0.2"  # in the demo shop's allowed_origins
UNLISTED_HOST = "127.0.0.3"  # not listed anywhere: a site borrowing the key
# The servers' database sessions carry these names, so each clean-up ends theirs and no other:
# a module's own servers', or the shared one's at the end of the browser tests.
SERVER_APP_NAME = "shopbot-browser-test-server"
SHARED_APP_NAME = "shopbot-browser-shared-server"


def server_env(**extra: str) -> dict[str, str]:
    env = server_environment(
        # One key for all: an owner signed in on one server is signed in on the others.
        SECRET_KEY="browser-tests-only-not-secret",
        ALLOWED_HOSTS="127.0.0.1",
        EMBEDDING_WARM_ON_START="1",
        PYTHONUNBUFFERED="1",
    )
    # No REDIS_URL: each server keeps its rate limits and connection slots in memory, so a killed
    # server leaves no slots behind and no other process shares its counters.
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "SITE_URL",
        "SHOPBOT_TEST_DB",
        "REDIS_URL",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


def _end_server_sessions(django_db_blocker, application_name: str) -> None:
    """A killed server's database sessions end a moment after it; end them now, or dropping the
    test database at the end of the session fails with "being accessed by other users"."""
    from django.db import connection, connections

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [application_name],
        )
    # While Playwright runs, Django keeps this thread's connection in a context-local slot, which
    # the test database teardown never sees: close it here.
    connections.close_all()


@contextmanager
def _servers(
    tmp_path_factory, django_db_blocker, application_name: str
) -> Iterator[Callable[..., DaphneProcess]]:
    """A factory starting servers whose database sessions carry `application_name`, all killed
    on the way out."""
    servers: list[DaphneProcess] = []

    def start(wait: bool = True, **extra: str) -> DaphneProcess:
        log = tmp_path_factory.mktemp("daphne") / "daphne.log"
        env = server_env(DATABASE_URL=server_database_url(application_name), **extra)
        server = DaphneProcess(env, log=log)
        server.launch()
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop(kill=True)
        _end_server_sessions(django_db_blocker, application_name)


@pytest.fixture(scope="module")
def start_server(
    django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[Callable[..., DaphneProcess]]:
    """A factory: start_server(wait=True, **env) -> a DaphneProcess (launched, and ready unless
    wait=False), killed at the end of the module: for a test that needs settings of its own, or
    kills its server."""
    with _servers(tmp_path_factory, django_db_blocker, SERVER_APP_NAME) as start:
        yield start


@pytest.fixture(scope="package")
def shared_server(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[DaphneProcess]:
    """One server with the default settings (no LLM key) for every browser test that needs no
    settings of its own and never stops it: started once (each start loads the embedding model),
    launched as soon as the first test asks, killed after the last browser test. Each module
    commits its own shops, so what one module's tests did to theirs never reaches another's."""
    with _servers(tmp_path_factory, django_db_blocker, SHARED_APP_NAME) as start:
        yield start(wait=False)


class _PageHandler(BaseHTTPRequestHandler):
    """Serves tests/browser/pages/*.html with {{NAME}} placeholders filled in."""

    values: dict[str, str] = {}

    def do_GET(self) -> None:
        name = self.path.split("?")[0].lstrip("/") or "index.html"
        path = PAGES / name
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        body = path.read_text()
        for key, value in self.values.items():
            body = body.replace("{{" + key + "}}", value)
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture(scope="module")
def other_sites() -> Iterator[Callable[[str, dict[str, str]], str]]:
    """Static servers on other loopback addresses: other_sites(host, values) -> base URL."""
    servers: list[ThreadingHTTPServer] = []

    def serve(host: str, values: dict[str, str]) -> str:
        handler = type("Handler", (_PageHandler,), {"values": values})
        server = ThreadingHTTPServer((host, 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://{host}:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="package", autouse=True)
def _orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps its event loop marked as running on the main thread while the
    browser is open, and Django then refuses every ORM call there (SynchronousOnlyOperation),
    pytest-django's own per-test transaction included. Nothing async runs on this thread during
    these tests, so the check is off for this folder's tests only, and back on afterwards."""
    patch = pytest.MonkeyPatch()
    patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    patch.undo()


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for all the browser tests (each test opens a context of its own),
    closed after the last of them: while it is open, this thread's event loop counts as running
    (see above), which the other folders' async tests would not survive."""
    if not Path(CHROMIUM).exists():
        message = f"No Chromium at {CHROMIUM}: run `apt-get install chromium` to run browser tests"
        if os.environ.get("SHOPBOT_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# ---- The demo site, and helpers for driving the widget ----

ANSWER_TIMEOUT = 30_000  # ms; the first answer after a (re)start waits for the embedding model
# A server started by the test itself answers its first question only once its model is loaded,
# which on a busy 2-core machine takes longer than a warm server's answer: this bounds a hang.
FIRST_ANSWER_TIMEOUT = 180_000
XSS_QUESTION = "Can you print a photo on the gift card?"
XSS_ANSWER = (
    'Yes! It looks like this: <img src=x onerror="window.__pwned=1;alert(1)"> '
    "<script>window.__pwned=2</script> **Photo cards** are $4."
)
DELIVERY = "Which towns do you deliver to, and how much is delivery?"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def claude(start_server, fake_llm) -> DaphneProcess:
    """A server pointed at the fake Anthropic API, for the module's tests with an LLM."""
    return start_server(ANTHROPIC_API_KEY="test", ANTHROPIC_BASE_URL=fake_llm.base_url)


@pytest.fixture(scope="module")
def site(request, django_db_blocker, shared_server, other_sites) -> Iterator[dict[str, Any]]:
    """The demo shop (committed, so the server sees it), the shared server (no LLM key), and two
    other websites embedding the widget."""
    # The server boots (and loads the embedding model) while this process embeds the demo FAQ.
    demo_texts_embedded = request.getfixturevalue("demo_texts_embedded")
    values: dict[str, str] = {}
    listed = other_sites(LISTED_HOST, values)
    unlisted = other_sites(UNLISTED_HOST, values)
    with django_db_blocker.unblock():  # committed: the server is another process
        shop = make_demo_shop(  # is_demo: the storefront at / shows it
            demo_texts_embedded, allowed_origins=f"https://shop.example\n{listed}", is_demo=True
        )
        # A real save: the post_save signal embeds it with the real model.
        FAQEntry.objects.create(shop=shop, question=XSS_QUESTION, answer=XSS_ANSWER)
    values.update(SERVER=shared_server.url, SHOP=shop.public_key)
    shared_server.wait_ready()
    yield {"shop": shop, "server": shared_server, "listed": listed, "unlisted": unlisted}
    with django_db_blocker.unblock():
        Shop.objects.filter(pk=shop.pk).delete()


@pytest.fixture
def page(browser, site) -> Iterator[Page]:
    """A fresh browser context (empty localStorage) that fails the test on any script error or
    dialog."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
    yield page
    context.close()
    assert page.problems == []


def sign_in(page: Page, server_url: str, username: str, password: str) -> None:
    """Sign in to the admin from that server's login page."""
    page.goto(f"{server_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def signed_in(
    browser, server_url: str, username: str, password: str, width: int = 1280, height: int = 900
) -> Page:
    """A page in a fresh context of that window size, signed in to the admin of that server;
    the caller closes it (`page.context.close()`)."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    sign_in(page, server_url, username, password)
    return page


@contextmanager
def committed_owner(shop: Shop, username: str, password: str, django_db_blocker) -> Iterator[str]:
    """An owner of `shop` made by `create_owner` with `password`, committed (outside any test
    transaction) so the server process can sign them in; deleted on the way out."""
    with django_db_blocker.unblock():
        call_command("create_owner", shop.pk, username, password=password)
    try:
        yield username
    finally:
        with django_db_blocker.unblock():
            User.objects.filter(username=username).delete()


OWNER_PASSWORD = "a-long-owner-password-1"


@pytest.fixture(scope="module")
def site_owner(site, django_db_blocker) -> Iterator[str]:
    """The username of an owner of the module's demo shop (`site`), committed; they sign in with
    OWNER_PASSWORD."""
    with committed_owner(site["shop"], "poppy", OWNER_PASSWORD, django_db_blocker) as username:
        yield username


@contextmanager
def committed_shop(name: str, owner: str, password: str, django_db_blocker) -> Iterator[Shop]:
    """A shop of its own for a module, with an owner (`committed_owner`), committed so the server
    process sees them; both deleted on the way out."""
    with django_db_blocker.unblock():
        shop = Shop.objects.create(name=name)
    try:
        with committed_owner(shop, owner, password, django_db_blocker):
            yield shop
    finally:
        with django_db_blocker.unblock():
            Shop.objects.filter(pk=shop.pk).delete()


def w(page: Page, testid: str):
    return page.locator(f"[data-testid={testid}]")


def open_widget(page: Page, url: str) -> None:
    page.goto(url)
    w(page, "sb-launcher").click()
    expect(w(page, "sb-root")).to_have_attribute("data-conn", "online", timeout=ANSWER_TIMEOUT)


def ask(page: Page, text: str) -> None:
    w(page, "sb-input").fill(text)
    w(page, "sb-input").press("Enter")


def wait_answers(page: Page, count: int, timeout: float = ANSWER_TIMEOUT) -> None:
    final = page.locator("[data-testid=sb-bot][data-state=final]")
    expect(final).to_have_count(count, timeout=timeout)


def record_frames(page: Page) -> dict[str, list]:
    """Every websocket the page opens, and the JSON frames it sent."""
    seen: dict[str, list] = {"sockets": [], "sent": []}

    def on_socket(ws: WebSocket) -> None:
        seen["sockets"].append(ws)
        ws.on("framesent", lambda payload: seen["sent"].append(json.loads(payload)))

    page.on("websocket", on_socket)
    return seen


def stored(ask_id: str) -> list[tuple[str, str]]:
    """(role, mode) of every stored message of that ask, oldest first."""
    return list(Message.objects.filter(ask_id=ask_id).order_by("id").values_list("role", "mode"))
