"""
EMBEDDING_RUNTIME=onnx (faq/embedding.py, OnnxEncoder: customers' questions) against torch, with
the real model: the same vectors, an exported file that is unreadable or gone is exported again,
and the FAQ's own texts stay on torch.

Each test exports into its own temporary EMBEDDING_ONNX_DIR (a few seconds each), and the
process's encoder is put back afterwards, so no other test sees these.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faq import embedding

SHORT = "Do you deliver?"
# Far past all-MiniLM-L6-v2's max_seq_length (256 word pieces): truncated, in both runtimes.
LONG = " ".join(
    ["Our bouquets are made to order each morning with seasonal stems from local growers."] * 30
)
TEXTS = [
    "Do you deliver to Princeton?",
    "What's the cut-off for same-day delivery?",
    "How do I keep my flowers fresh?",
    "ünïcödé, émojis 🌸 and   extra   spaces  ",
    "x",
]


@pytest.fixture
def runtime(settings, tmp_path):
    """Switch between runtimes with `runtime("torch" | "onnx")`; exports go to tmp_path."""
    saved = embedding._onnx, embedding._onnx_failed
    embedding._onnx, embedding._onnx_failed = None, False
    settings.EMBEDDING_ONNX_DIR = tmp_path

    def use(name: str) -> None:
        settings.EMBEDDING_RUNTIME = name

    yield use
    embedding._onnx, embedding._onnx_failed = saved


def both(runtime, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    runtime("torch")
    torch_vectors = embedding.embed_questions(texts)
    runtime("onnx")
    return torch_vectors, embedding.embed_questions(texts)


def test_onnx_gives_torchs_vectors(runtime):
    model = embedding.get_model()
    assert len(model.tokenizer(LONG)["input_ids"]) > model.max_seq_length > 0

    torch_vectors, onnx_vectors = both(runtime, TEXTS)
    assert onnx_vectors.shape == (len(TEXTS), 384)
    assert onnx_vectors.dtype == np.float32
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)

    # One batch: the short text padded to the long one's length, the long one truncated.
    torch_vectors, onnx_vectors = both(runtime, [SHORT, LONG])
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=1e-5)
    # ... and each the same as when encoded alone (padding changes nothing).
    np.testing.assert_allclose(embedding.embed_questions([SHORT])[0], onnx_vectors[0], atol=1e-5)
    np.testing.assert_allclose(embedding.embed_questions([LONG])[0], onnx_vectors[1], atol=1e-5)

    assert embedding.embed_questions([]).shape == (0, 384)


def test_onnx_batches_of_embedding_batch_size_keep_the_order(runtime, settings):
    settings.EMBEDDING_BATCH_SIZE = 2  # several batches, sorted by length inside
    texts = [*TEXTS, LONG, SHORT]
    torch_vectors, onnx_vectors = both(runtime, texts)
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=1e-5)


def test_the_faqs_texts_are_embedded_by_torch_whatever_the_runtime(runtime):
    runtime("onnx")
    vectors = embedding.embed(TEXTS)
    assert embedding._onnx is None  # no ONNX session was opened, nothing exported
    assert not any(embedding.settings.EMBEDDING_ONNX_DIR.iterdir())
    np.testing.assert_allclose(vectors, embedding.embed_questions(TEXTS), atol=1e-5)
    assert embedding._onnx is not None


def test_an_export_that_cannot_be_written_leaves_questions_on_torch(runtime, settings, caplog):
    runtime("onnx")
    blocked = settings.EMBEDDING_ONNX_DIR / "not-a-folder"
    blocked.write_text("a file where the export folder should be")
    settings.EMBEDDING_ONNX_DIR = blocked

    with caplog.at_level("WARNING", logger="faq.embedding"):
        vectors = embedding.embed_questions(TEXTS)
        again = embedding.embed_questions(TEXTS)
    assert embedding._onnx is None and embedding._onnx_failed
    np.testing.assert_allclose(vectors, embedding.embed(TEXTS), atol=1e-6)
    np.testing.assert_allclose(again, vectors, atol=1e-6)
    warnings = [r for r in caplog.records if "EMBEDDING_RUNTIME=onnx is unavailable" in r.message]
    assert len(warnings) == 1  # once, not at every question
    assert blocked.read_text() == "a file where the export folder should be"


def test_an_unreadable_or_missing_export_is_exported_again(runtime):
    runtime("onnx")
    expected = embedding.embed_questions(TEXTS)
    path = embedding.onnx_path()
    assert path.exists() and path.parent == embedding.settings.EMBEDDING_ONNX_DIR

    for damage in ("corrupt", "cut short", "missing"):
        if damage == "corrupt":
            path.write_bytes(b"not an onnx model")
        elif damage == "cut short":
            path.write_bytes(path.read_bytes()[:1000])  # a copy interrupted half-way
        else:
            path.unlink()
        embedding._onnx = None  # a new process
        np.testing.assert_allclose(
            embedding.embed_questions(TEXTS), expected, atol=1e-6, err_msg=damage
        )
        assert path.stat().st_size > 1_000_000, damage
        assert embedding._onnx is not None, damage  # exported again, not fallen back to torch

    assert path.stat().st_mode & 0o777 == 0o644  # another user's service can read it
    # Written to a temporary file and renamed: nothing else is left beside it.
    assert [p.name for p in Path(path.parent).iterdir()] == [path.name]


def test_another_model_gets_its_own_file(settings, tmp_path):
    settings.EMBEDDING_ONNX_DIR = tmp_path
    bundled = embedding.onnx_path()
    embedding.model_path.cache_clear()
    try:
        settings.EMBEDDING_MODEL = str(tmp_path / "other-model")
        (tmp_path / "other-model").mkdir()
        (tmp_path / "other-model" / "config.json").write_text("{}")
        other = embedding.onnx_path()
    finally:
        embedding.model_path.cache_clear()
    assert other != bundled and other.parent == bundled.parent == tmp_path


def test_an_unknown_runtime_is_a_configuration_error():
    result = subprocess.run(
        [sys.executable, "-c", "import shopbot.settings"],
        env={**os.environ, "EMBEDDING_RUNTIME": "tensorflow"},
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert 'EMBEDDING_RUNTIME must be "torch" or "onnx"' in result.stderr
