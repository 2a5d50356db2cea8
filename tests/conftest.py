"""
Shared fixtures (shared helpers are in tests/support.py). Everything here is real: the PostgreSQL
test database with pgvector (embedded or DATABASE_URL's) and the real embedding model. The only
shortcut is that the demo shop's vectors are computed by the model once per test session and
copied into each test's fresh database.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.creation import DatabaseCreation as PostgresCreation
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from pgvector import Vector
from threadpoolctl import threadpool_limits

from faq import embedding
from faq.demo import entry_fields
from faq.models import FAQEntry, Shop
from harness.daphne_process import free_port
from lib import ratelimit
from tests.fake_anthropic import FakeAnthropic
from tests.support import (
    Inbox,
    admin_connection,
    make_demo_shop,
    model_key,
    remembering_embed,
    stored_vectors,
)

TESTS = Path(__file__).resolve().parent

if settings.EMBEDDING_THREADS > 0:
    # What shopbot/settings.py asks of every ShopBot process (numpy's BLAS on as many threads as
    # the models), here in the test process, which pytest's plugins had imported numpy into first.
    threadpool_limits(settings.EMBEDDING_THREADS, user_api="blas")


def xdist_group(nodeid: str) -> str:
    """The group of a test under pytest-xdist (`make test` runs three workers): a group runs whole
    on one worker, so module- and package-scoped fixtures (servers, the browser) start once. Each
    module is a group of its own; the browser tests are one (one Chromium, one shared server); so
    are the modules using the tests' Redis database (REDIS_TEST_URL, which their tests flush)."""
    path = nodeid.split("::")[0]
    if path.startswith("tests/browser/"):
        return "browser"
    if path in _redis_modules():
        return "redis"
    return path


@functools.cache
def _redis_modules() -> frozenset[str]:
    root = TESTS.parent
    return frozenset(
        path.relative_to(root).as_posix()
        for path in TESTS.rglob("test_*.py")
        if re.search(r"\b(require_redis|REDIS_TEST_URL)\b", path.read_text())
    )


@pytest.hookimpl(tryfirst=True)  # before xdist's own choice from --dist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist's scope scheduling with the groups above as scopes (its own `--dist loadgroup`
    marks can no longer rename pytest 9's test ids). With --no-loadscope-reorder the groups go
    out in collection order (below)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """With xdist, the controlling process starts the embedded PostgreSQL before the workers do
    and holds it until the end: pgserver stops it when the last process using it exits, which
    would otherwise be the first worker to finish while the other still runs."""
    if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", None):
        from django.conf import settings

        from shopbot import embedded_db

        database = settings.DATABASES["default"]
        if database["ENGINE"] == "shopbot.pgembedded":
            embedded_db.start(database["PGDATA"], database=database["NAME"])


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown without it
def pytest_configure_node(node) -> None:
    """xdist's hook in the controlling process, per worker: the name of the run's template
    database (`django_db_setup` below), the test database's own name with "_template"."""
    node.workerinput[TEMPLATE_KEY] = template_database_name()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controlling process drops the run's template database once the workers are done."""
    if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", None):
        with admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{template_database_name()}"')


TEMPLATE_KEY = "shopbot_template_database"


def template_database_name() -> str:
    test_name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    return f"{test_name or 'test_' + settings.DATABASES['default']['NAME']}_template"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist the groups are handed out longest first: the browser tests, then the groups
    with a `slow` test, then the rest in file order, so no long module is left for the end while
    the other workers have nothing to do. Without xdist the order stays the usual one."""
    if getattr(config, "workerinput", None) is None:
        return
    groups = {item: xdist_group(item.nodeid) for item in items}
    slow = {group for item, group in groups.items() if item.get_closest_marker("slow")}
    first_seen: dict[str, int] = {}
    for group in groups.values():
        first_seen.setdefault(group, len(first_seen))

    def rank(item: pytest.Item) -> tuple[int, int]:
        group = groups[item]
        return (0 if group == "browser" else 1 if group in slow else 2), first_seen[group]

    items.sort(key=rank)


def _sql_flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Django empties the tables after each transactional test (`flush`) with one TRUNCATE of all
    of them, which costs PostgreSQL a new file per table and a wait on the disk: 270 ms of its
    CPU and 1.1-1.6 s of wall time per test on the shared machine, against 4 ms and 11 ms for a
    DELETE of each table's few rows in the same transaction (the foreign keys are deferred to its
    commit). The content types and permissions stay: flush's post_migrate signal would write the
    same rows again (another 0.3 s of PostgreSQL's CPU), and now finds them there. Sequences are
    reset by TRUNCATE only when asked, and then it still is."""
    if reset_sequences or allow_cascade:
        return _sql_flush_by_truncate(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    return [
        f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
        for table in tables
        if table not in KEPT_BY_FLUSH
    ]


KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})
_sql_flush_by_truncate = PostgresOperations.sql_flush
PostgresOperations.sql_flush = _sql_flush_by_delete


@pytest.fixture(scope="session")
def django_db_setup(_test_database_from_template, django_db_setup):
    """pytest-django's, which under xdist copies this run's template database
    (`_test_database_from_template`) instead of migrating a database of its own."""
    yield


@pytest.fixture(scope="session")
def _test_database_from_template(request: pytest.FixtureRequest, django_db_blocker):
    """Under xdist each worker would build its test database by running every migration (about
    5 s of CPU on a quiet machine, more with all workers at it). Instead the first worker to
    get here migrates the run's template database (the controlling process names it, and drops
    it at the end), and every worker's `create_test_db` copies it, which PostgreSQL does file by
    file (CREATE DATABASE ... TEMPLATE: about 0.3 s). A session-level advisory lock on the server
    holds the other workers back until the template is there; meanwhile they embed the demo FAQ
    for all (`demo_texts_embedded`: each model's file by one of them, the others waiting on its
    lock and reading it from EMBEDDING_CACHE, as the first does), so the two start-up costs
    overlap instead of each worker paying both. The template's comment, the run's
    id, tells a template of this run from one an interrupted run left behind. Without xdist
    nothing changes."""
    workerinput = getattr(request.config, "workerinput", None)
    if not workerinput or TEMPLATE_KEY not in workerinput:
        yield
        return
    template, run = workerinput[TEMPLATE_KEY], workerinput["testrunuid"]
    with django_db_blocker.unblock(), admin_connection() as admin:
        key = [template]
        if not admin.execute("SELECT pg_try_advisory_lock(hashtext(%s))", key).fetchone()[0]:
            request.getfixturevalue("demo_texts_embedded")
            admin.execute("SELECT pg_advisory_lock(hashtext(%s))", key)
        comment = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [template],
        ).fetchone()
        if comment is None or comment[0] != run:
            _migrate_template(template)
            admin.execute(f"COMMENT ON DATABASE \"{template}\" IS '{run}'")
        admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", key)
    patch = pytest.MonkeyPatch()
    patch.setattr(
        PostgresCreation,
        "create_test_db",
        functools.partialmethod(_create_test_db_from_template, template=template),
    )
    yield
    patch.undo()


def _migrate_template(template: str) -> None:
    """The template database made by Django's own `create_test_db` (every migration) under that
    name; the connection's settings as they were before."""
    creation = connection.creation
    settings_dict, before = connection.settings_dict, dict(connection.settings_dict)
    test_before = dict(settings_dict.setdefault("TEST", {}))
    settings_dict["TEST"]["NAME"] = template
    try:
        creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    finally:
        connection.close()
        settings_dict["TEST"] = test_before
        settings.DATABASES[connection.alias]["NAME"] = settings_dict["NAME"] = before["NAME"]


def _create_test_db_from_template(
    self: PostgresCreation,
    verbosity: int = 1,
    autoclobber: bool = False,
    serialize: bool = True,
    keepdb: bool = False,
    *,
    template: str,
) -> str:
    """Django's `create_test_db` for an xdist worker: its test database a copy of `template`."""
    name = self._get_test_db_name()
    with admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    self.connection.close()
    settings.DATABASES[self.connection.alias]["NAME"] = name
    self.connection.settings_dict["NAME"] = name
    if serialize:
        self.connection._test_serialized_contents = self.serialize_db_to_string()
    self.connection.ensure_connection()
    return name


@pytest.fixture(scope="session", autouse=True)
def end_kept_connections(django_db_setup, django_db_blocker):
    """The chat's worker threads keep their database connections between answers
    (DATABASE_CONN_MAX_AGE), as a server's do; a thread's connection can only be closed on that
    thread. End those sessions before the test database is dropped, which they would block."""
    yield
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Every test starts with no searches counted against its (shared, 127.0.0.1) address."""
    ratelimit.reset_memory()


@pytest.fixture(scope="session", autouse=True)
def model_ready() -> None:
    """The model's ONNX file exported if this checkout has none yet (a fresh clone, as in CI:
    `make test` exports it first, a bare pytest here), and loaded, before any test starts a
    server: servers never export it themselves (faq/embedding.py)."""
    if embedding.MINILM in embedding.served_models():
        embedding.export_onnx()
    embedding.warm()


# Vectors of fixed texts (the demo FAQ's) kept between runs, keyed by the model and the text:
# var/ is local state, never committed (a fresh clone embeds them once).
EMBEDDING_CACHE = TESTS.parent / "var" / "test-embeddings"


def embed_cached(texts: list[str], kinds: list[str], model: str) -> np.ndarray:
    """`embedding.embed(texts, kinds, model)`, with each (model, kind, text)'s vector read from
    EMBEDDING_CACHE when an earlier run stored it; the others embedded by the real model now and
    stored. For fixtures of fixed texts only: a test of the embedding path embeds for real. A
    lock file per key makes a second xdist worker wait for the vectors the first is embedding
    (the demo FAQ's: 11 s of CPU, 9 of them e5's) instead of embedding them too."""
    key = hashlib.sha256(model_key(model).encode())
    for kind, text in zip(kinds, texts, strict=True):
        key.update(f"\0{kind}\0{text}".encode())
    path = EMBEDDING_CACHE / f"{model}-{key.hexdigest()[:24]}.npy"
    vectors = _stored_vectors(path, len(texts))
    if vectors is not None:
        return vectors
    EMBEDDING_CACHE.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        vectors = _stored_vectors(path, len(texts))
        if vectors is not None:  # the other worker's, stored while this one waited
            return vectors
        vectors = embedding.embed(texts, kinds, model)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as out:
            np.save(out, vectors)
        os.replace(partial, path)  # whole or not at all
    return vectors


def _stored_vectors(path: Path, count: int) -> np.ndarray | None:
    if path.exists():
        try:
            vectors = np.load(path)
            if vectors.shape == (count, settings.EMBEDDING_DIMENSIONS):
                return vectors
        except (OSError, ValueError):  # cut short by a killed run: embedded again
            pass
    return None


@pytest.fixture(scope="session")
def demo_texts_embedded() -> dict[str, list[tuple[str, str, str, list[float]]]]:
    """question -> [(model, kind, text, vector)] for every demo entry, from each real model a
    shop may be embedded with (stored between runs by `embed_cached`)."""
    entries = [FAQEntry(**fields) for fields in entry_fields()]
    texts = [
        (entry.question, kind, text) for entry in entries for kind, text in entry.embedding_texts()
    ]
    result = {entry.question: [] for entry in entries}
    for model in embedding.served_models():
        vectors = embed_cached([t for _, _, t in texts], [k for _, k, _ in texts], model)
        for (question, kind, text), vector in zip(texts, vectors, strict=True):
            result[question].append((model, kind, text, vector))
    return result


@pytest.fixture
def demo_vectors_reused(demo_texts_embedded, monkeypatch) -> None:
    """For tests about something else than embedding that still build the demo's entries through
    the real code path (an import of the demo file, `load_demo`): the model's call returns the
    session's vectors (`demo_texts_embedded`, made by the same real models) for the texts it has
    already embedded, and embeds every other text for real. Not for a test of the embedding."""
    known = {
        (model, kind, text): vector
        for rows in demo_texts_embedded.values()
        for model, kind, text, vector in rows
    }
    monkeypatch.setattr(embedding, "embed", remembering_embed(known, key=str))


@pytest.fixture
def shop_open():
    """The clock at a moment the demo shop is open by its hours (Monday, December 7, 2026, 3 PM
    in Hamilton NJ), ticking on: for tests of what the chat says whatever its hours."""
    with time_machine.travel(datetime(2026, 12, 7, 15, 0, tzinfo=ZoneInfo("America/New_York"))):
        yield


@pytest.fixture(scope="session")
def demo_vectors_stored(demo_texts_embedded) -> dict[str, list[tuple[str, str, str, Vector]]]:
    """`demo_texts_embedded` with each vector a `StoredVector` (tests/support.py), for building
    demo shops; `make_demo_shop` uses the same ones."""
    return stored_vectors(demo_texts_embedded)


@pytest.fixture
def demo_shop(db, demo_vectors_stored) -> Shop:
    return make_demo_shop(demo_vectors_stored)


@pytest.fixture
def chat_without_claude(settings):
    """Chat tests that must not depend on the environment: no Claude key, no Redis, and the
    in-memory limit counters fresh before and after."""
    settings.ANTHROPIC_API_KEY = ""
    settings.REDIS_URL = ""
    ratelimit.reset_memory()
    yield
    ratelimit.reset_memory()


@pytest.fixture
def handoff_chat(chat_without_claude, settings, transactional_db):
    """Hand-off tests: the chat without Claude or Redis, the owner's email retried fast (0.2 s,
    two tries; the job runs at commit in the test process, JOBS_AT_COMMIT)."""
    settings.HANDOFF_RETRY_SECONDS = 0.2
    settings.HANDOFF_EMAIL_TRIES = 2


@pytest.fixture
def fake(settings):
    """Claude on, against the local fake Messages API (real HTTP and SSE on loopback)."""
    with FakeAnthropic() as server:
        settings.ANTHROPIC_API_KEY = "test-key"
        settings.ANTHROPIC_BASE_URL = server.base_url
        settings.ANTHROPIC_TIMEOUT = 5.0
        yield server


@pytest.fixture
def smtp_port(settings) -> int:
    """Django's email goes to a loopback port by SMTP (nothing listens until `inbox`)."""
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = False, "", ""
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "ShopBot <bot@shopbot.example>"
    settings.SITE_URL = "https://bot.example.com"
    return port


@pytest.fixture
def inbox(smtp_port) -> Inbox:
    """A real SMTP server (aiosmtpd) on that port, keeping what it receives."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield handler
    controller.stop()
