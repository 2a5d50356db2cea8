"""
Shared fixtures (shared helpers are in tests/support.py). Everything here is real: the PostgreSQL
test database with pgvector (embedded or DATABASE_URL's) and the real embedding model. The only
shortcut is that the demo shop's vectors are computed by the model once per test session and
copied into each test's fresh database.
"""

from __future__ import annotations

import pytest
from django.db import connection

from faq import embedding
from faq.demo import entry_fields
from faq.models import FAQEntry, Shop
from tests.fake_anthropic import FakeAnthropic
from tests.support import make_demo_shop
from widget.chat import limits


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


@pytest.fixture(scope="session", autouse=True)
def model_ready() -> None:
    """The model loaded, and its ONNX file exported if this checkout has none yet (a fresh clone,
    as in CI), before any test starts a server. Otherwise the first servers export it in their
    warm-up while the first tests run: seconds of both cores and of their GIL, which a test
    timing a streamed answer or a flood does not survive."""
    embedding.warm()


@pytest.fixture(scope="session")
def demo_texts_embedded() -> dict[str, list[tuple[str, str, list[float]]]]:
    """question -> [(kind, text, vector)] for every demo entry, from the real model."""
    result = {}
    for fields in entry_fields():
        entry = FAQEntry(**fields)
        texts = entry.embedding_texts()
        vectors = embedding.embed([text for _, text in texts], [kind for kind, _ in texts])
        result[entry.question] = [(k, t, v) for (k, t), v in zip(texts, vectors, strict=True)]
    return result


@pytest.fixture
def demo_shop(db, demo_texts_embedded) -> Shop:
    return make_demo_shop(demo_texts_embedded)


@pytest.fixture
def chat_without_claude(settings):
    """Chat tests that must not depend on the environment: no Claude key, no Redis, and the
    in-memory limit counters fresh before and after."""
    settings.ANTHROPIC_API_KEY = ""
    settings.REDIS_URL = ""
    limits.reset_memory()
    yield
    limits.reset_memory()


@pytest.fixture
def fake(settings):
    """Claude on, against the local fake Messages API (real HTTP and SSE on loopback)."""
    with FakeAnthropic() as server:
        settings.ANTHROPIC_API_KEY = "test-key"
        settings.ANTHROPIC_BASE_URL = server.base_url
        settings.ANTHROPIC_TIMEOUT = 5.0
        yield server
