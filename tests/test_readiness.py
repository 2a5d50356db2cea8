"""
/healthz as a readiness check: 503 while the server's warm-up is loading the embedding model, 200
once customers' questions can be answered, and 503 for good if the warm-up failed (a model that
is not there, or no exported ONNX file: a server never exports it, and its log says what to run).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from faq import embedding
from harness.daphne_process import DaphneProcess
from tests.support import make_demo_shop, server_environment

pytestmark = pytest.mark.slow  # servers of its own

# Loading the model and exporting it on a busy machine: bounds a hang, not speed.
TIMEOUT = 120


def healthz(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.django_db(transaction=True)
def test_a_starting_server_is_not_ready_until_its_model_is_and_serves_without_torch(
    demo_texts_embedded,
):
    shop = make_demo_shop(demo_texts_embedded)
    server = DaphneProcess(server_environment()).launch()  # the session's exported model
    try:
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.log_tail()
            try:
                seen.append(healthz(server.url))
            except OSError:
                pass  # not listening yet
            else:
                if seen[-1][0] == 200:
                    break
            time.sleep(0.2)  # polling a starting server; there is nothing to wait on instead
        assert seen and seen[-1] == (200, "OK"), (seen, server.log_tail())
        assert set(seen[:-1]) <= {(503, "loading the embedding model")}, seen

        async def ask() -> dict:
            async with connect(f"{server.ws_url}/ws/chat/{shop.public_key}/") as ws:
                ready = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert ready["type"] == "ready", ready
                ask = {"type": "ask", "id": "a1", "text": "Do you deliver to Princeton?"}
                await ws.send(json.dumps(ask))
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if frame["type"] == "answer":
                        return frame

        answer = asyncio.run(ask())
        assert answer["mode"] == "faq" and answer["sources"], answer
        # Warmed up and serving: onnxruntime is in the process, torch is not (issue 32).
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert "libonnxruntime" in maps and "libtorch" not in maps
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_server_without_the_exported_model_is_never_ready_and_says_what_to_run(tmp_path):
    onnx_dir = tmp_path / "onnx"  # empty: a web process never exports the model itself
    server = DaphneProcess(server_environment(EMBEDDING_ONNX_DIR=str(onnx_dir))).launch()
    try:
        deadline = time.monotonic() + TIMEOUT
        while "export_model" not in server.log_tail() and time.monotonic() < deadline:
            assert server.process.poll() is None, server.log_tail()
            time.sleep(0.2)  # polling a starting server's log; there is nothing to wait on instead
        assert "Run `.venv/bin/python manage.py export_model` once" in server.log_tail()
        status = None
        while status is None and time.monotonic() < deadline:
            try:
                status = healthz(server.url)
            except OSError:
                time.sleep(0.2)  # not listening yet
        assert status == (503, "loading the embedding model")
        assert not onnx_dir.exists() or not any(onnx_dir.iterdir())
        assert "libtorch" not in Path(f"/proc/{server.process.pid}/maps").read_text()
    finally:
        server.stop()


@pytest.fixture
def cold_process(settings, monkeypatch):
    """This process as if its warm-up had not loaded the model yet; put back afterwards."""
    monkeypatch.setattr(embedding, "_model", None)
    monkeypatch.setattr(embedding, "_onnx", None)
    monkeypatch.setattr(embedding, "_warm_started", False)
    yield
    embedding.model_path.cache_clear()


@pytest.mark.django_db
def test_a_failed_warm_up_keeps_the_process_out_of_rotation(
    client, settings, cold_process, tmp_path
):
    assert client.get("/healthz").status_code == 200  # no warm-up started: the model loads lazily

    settings.EMBEDDING_MODEL = str(tmp_path / "no-such-model")
    embedding.model_path.cache_clear()
    with pytest.raises(OSError):  # no model in that folder
        embedding.warm()

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.content == b"loading the embedding model"
    assert not embedding.is_ready() and embedding._model is None
