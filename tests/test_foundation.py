"""The foundation: database with pgvector, settings, the demo shop, the pages, `manage.py serve`
(its whole run on a fresh copy is tests/test_printed_commands.py's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from faq import embedding, search
from faq.demo import load_shop as load_demo_shop
from faq.models import FAQEntry, FAQVector, Shop
from tests.support import make_demo_shop, run_python

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: int = 120):
    full_env = {**os.environ, "SECRET_KEY": "k", **(env or {})}
    full_env.pop("DJANGO_SETTINGS_MODULE")  # pytest-django's; manage.py picks the real settings
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.django_db
def test_vector_extension_answers_the_per_shop_scan_exactly():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None

    shop = Shop.objects.create(name="Index test")
    entry = FAQEntry.objects.create(shop=shop, question="q", answer="a")
    texts = ["Do you deliver to Princeton?", "What are your opening hours?", "Can I pay by card?"]
    vectors = embedding.embed(texts)
    for text, vector in zip(texts, vectors, strict=True):
        FAQVector.objects.create(
            entry=entry, kind="alt", text=text, model_name=embedding.model_name(), embedding=vector
        )
    query = embedding.embed_one("delivery to princeton")
    rows, _, versions, signature = search._nearest_vectors(
        shop, query, "delivery to princeton", embedding.default_model()
    )
    similarities = [row[2] for row in rows]
    assert len(rows) == 3 and similarities == sorted(similarities, reverse=True)
    assert list(versions) == [entry.pk]  # the candidate's version, for the entries' cache
    vector_ids = FAQVector.objects.filter(entry=entry).values_list("id", flat=True)
    assert signature == (3, sum(vector_ids))  # the shop index's signature, read once
    assert similarities[0] == pytest.approx(float(vectors[0] @ query), abs=1e-4)
    with connection.cursor() as cursor:
        # No vector index: the product's only vector query is an exact scan of the shop's rows
        # (migration faq.0007 dropped the HNSW index no query used).
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'faq_faqvector'")
        assert not any("hnsw" in row[0] or "ivfflat" in row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_load_demo_embeds_every_entry_and_is_idempotent(demo_vectors_reused):
    # The session's vectors of the demo texts, by the same real models (11 s of CPU a build
    # saved); `make run` builds the demo embedding every text for real
    # (tests/test_printed_commands.py).
    shop, created = load_demo_shop()
    assert created
    entries = shop.entries.count()
    vectors = FAQVector.objects.filter(entry__shop=shop).count()
    assert entries >= 25
    # Once per model of the (English) demo shop.
    models = len(embedding.shop_models(shop.language))
    expected = models * sum(len(e.embedding_texts()) for e in shop.entries.all())
    assert vectors == expected

    shop_again, created_again = load_demo_shop()
    assert (shop_again.pk, created_again) == (shop.pk, False)
    assert Shop.objects.count() == 1
    assert shop.entries.count() == entries
    assert FAQVector.objects.filter(entry__shop=shop).count() == vectors


@pytest.mark.django_db
def test_storefront_embeds_the_widget_like_a_shop_would(client, demo_texts_embedded):
    demo_shop = make_demo_shop(demo_texts_embedded, is_demo=True)
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Petal" in html
    tag = re.search(
        r'<script src="http://testserver/widget.js" data-shop="([^"]+)" data-color="#\w{6}" async>',
        html,
    )
    assert tag and tag.group(1) == demo_shop.public_key


@pytest.mark.django_db
def test_storefront_without_demo_shop_says_how_to_load_it(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "manage.py load_demo" in response.content.decode()


@pytest.mark.django_db
def test_admin_login_page_and_healthz(client):
    assert client.get("/admin/login/").status_code == 200
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get("/healthz").content == b"OK"


def test_the_favicon_browsers_ask_for_is_the_chat_bubble(client):
    """Every page's /favicon.ico was a 404 in the browser's console."""
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)


def test_check_does_not_load_torch_or_twisted_or_start_a_database(tmp_path):
    """A command starts without the model's torch or daphne's server (twisted: it is imported
    where daphne serves), and `runserver` is still daphne's."""
    code = (
        "import sys, django; django.setup();"
        "from django.core.management import call_command, get_commands; call_command('check');"
        "import faq.embedding, faq.search;"
        "print(get_commands()['runserver'], 'twisted' in sys.modules,"
        " 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "SECRET_KEY": "k",
            "DJANGO_SETTINGS_MODULE": "shopbot.settings",
            "SHOPBOT_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("daphne False False False")
    assert not (tmp_path / "pgdata").exists()


def test_missing_secret_key_with_debug_off_is_an_error():
    result = run_manage("check", env={"SECRET_KEY": "", "DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@localhost/shop", "must point at PostgreSQL"),
        ("not a url", "DATABASE_URL"),
    ],
)
def test_misconfigured_database_url_is_explained(url, message):
    result = run_manage("check", env={"DATABASE_URL": url})
    assert result.returncode != 0
    assert message in result.stderr


def test_unreachable_database_is_explained_by_serve():
    url = "postgresql://postgres@127.0.0.1:1/nothing"  # port 1: nothing listens there
    result = run_manage("serve", "--port", "1", env={"DATABASE_URL": url})
    assert result.returncode != 0
    assert "Cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stderr


def _server_without_pgvector() -> str | None:
    """Debian's PostgreSQL on these machines has no pgvector: the perfect counter-example."""
    try:
        import psycopg

        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3
        ) as c:
            row = c.execute("SELECT 1 FROM pg_available_extensions WHERE name='vector'").fetchone()
            return None if row else "postgresql://postgres@127.0.0.1:5432/"
    except Exception:
        return None


def test_migrate_on_a_server_without_pgvector_says_what_to_do():
    base = _server_without_pgvector()
    if base is None:
        pytest.skip("needs a PostgreSQL without pgvector on 127.0.0.1:5432 (CI machines have one)")
    import psycopg

    name = f"shopbot_nopgvector_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base + "postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        result = run_manage("migrate", env={"DATABASE_URL": base + name})
    finally:
        with psycopg.connect(base + "postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
    assert result.returncode != 0
    assert "has no pgvector extension" in result.stderr
    assert "unset DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_without_a_secret_key_generates_one_into_the_data_folder(tmp_path):
    """The real settings with DEBUG on and no key, as `manage.py serve` has them on a fresh
    machine (its start, demo shop and stop are tests/test_printed_commands.py's `make run`): a key
    is made once, kept private in the data folder, and used again by the next process."""
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = {"SECRET_KEY": "", "SHOPBOT_DATA_DIR": str(tmp_path)}
    first = run_python(code, **env)
    assert first.returncode == 0, first.stderr
    path = tmp_path / "secret_key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.stdout.strip() == path.read_text().strip() and len(path.read_text()) >= 40
    assert run_python(code, **env).stdout == first.stdout
