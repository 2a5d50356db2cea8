"""The foundation: database with pgvector, settings, the demo shop, the pages, `manage.py serve`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from django.db import connection

from faq import embedding, search
from faq.demo import load_shop as load_demo_shop
from faq.models import FAQEntry, FAQVector, Shop
from harness.daphne_process import free_port
from tests.support import make_demo_shop

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
    rows, _ = search._nearest_vectors(
        shop, query, "delivery to princeton", embedding.default_model()
    )
    similarities = [row[2] for row in rows]
    assert len(rows) == 3 and similarities == sorted(similarities, reverse=True)
    assert similarities[0] == pytest.approx(float(vectors[0] @ query), abs=1e-4)
    with connection.cursor() as cursor:
        # No vector index: the product's only vector query is an exact scan of the shop's rows
        # (migration faq.0007 dropped the HNSW index no query used).
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'faq_faqvector'")
        assert not any("hnsw" in row[0] or "ivfflat" in row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_load_demo_embeds_every_entry_and_is_idempotent():
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


def test_check_does_not_load_torch_or_start_a_database(tmp_path):
    code = (
        "import sys, django; django.setup();"
        "from django.core.management import call_command; call_command('check');"
        "import faq.embedding, faq.search;"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
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
    assert result.stdout.strip().endswith("False False")
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


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.mark.slow
def test_serve_prepares_everything_serves_and_stops_the_database(tmp_path):
    """What `make run` does on a fresh machine, in a fresh data folder: embedded PostgreSQL,
    migrations, demo shop, admin user, daphne; then SIGTERM stops the server and the database."""
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "SHOPBOT_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SECRET_KEY", None)  # DEBUG: a key is generated into the data folder
    env.pop("DJANGO_SETTINGS_MODULE")  # pytest-django's; manage.py picks the real settings
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            output.append(line)
            if "Press Ctrl-C to stop" in line or proc.poll() is not None:
                break
        text = "".join(output)
        assert "password:" in text and "Embed snippet" in text, text
        assert f'src="http://127.0.0.1:{port}/widget.js" data-shop="pk_' in text
        for _ in range(100):  # daphne binds right after printing
            try:
                status, html = _get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200 and "Petal" in html
        assert _get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200
        assert (tmp_path / "secret_key").exists()
        postmaster = int((tmp_path / "pgdata" / "postmaster.pid").read_text().split()[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # The embedded PostgreSQL went away with the server: a clean shutdown removes its pid file,
    # and the process is gone (or a zombie waiting for init to reap it: pg_ctl daemonizes it).
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()
    assert not psutil.pid_exists(postmaster) or (
        psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    )
