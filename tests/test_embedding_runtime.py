"""
EMBEDDING_RUNTIME=onnx (faq/embedding.py, OnnxEncoder: the `tokenizers` package, onnxruntime and
numpy, no torch) against sentence-transformers on torch, with the real model: the same vectors for
customers' questions and the FAQ's own texts; the export (`export_onnx`, `manage.py
export_model`) writes its two files once, again when they are unreadable; a process embedding on
onnx never loads torch, and one without the exported files says what to run instead of exporting.

Tests that export do it into their own temporary EMBEDDING_ONNX_DIR (seconds each), and the
process's encoder is put back afterwards, so no other test sees these.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from faq import embedding
from faq.demo import entry_fields
from faq.models import FAQEntry
from tests.support import run_python

ROOT = Path(__file__).resolve().parent.parent
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
    "  CAPITALS, a tab\tand a new\nline ",
    "中文字符 and a zero\u200bwidth space",
    "x",
    "",
]


def sentence_transformers(texts: list[str]) -> np.ndarray:
    """The reference: the SentenceTransformer itself, on torch."""
    return embedding.get_model().encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )


@pytest.fixture
def fresh_export(settings, tmp_path):
    """An empty EMBEDDING_ONNX_DIR and no encoder in this process; put back afterwards."""
    saved = embedding._onnx
    embedding._onnx = None
    settings.EMBEDDING_ONNX_DIR = tmp_path
    yield tmp_path
    embedding._onnx = saved


@pytest.mark.slow  # torch loaded beside onnxruntime
def test_questions_and_the_faqs_texts_get_sentence_transformers_vectors(settings):
    settings.EMBEDDING_RUNTIME = "onnx"
    model = embedding.get_model()
    assert len(model.tokenizer(LONG)["input_ids"]) > model.max_seq_length > 0
    faq_texts, kinds = [], []
    for fields in entry_fields():
        for kind, text in FAQEntry(**fields).embedding_texts():
            faq_texts.append(text)
            kinds.append(kind)
    questions = [*TEXTS, LONG]

    for texts, vectors in (
        (questions, embedding.embed_questions(questions)),
        (faq_texts, embedding.embed(faq_texts, kinds)),
    ):
        assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
        assert np.abs(vectors - sentence_transformers(texts)).max() < 1e-6
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert len(faq_texts) > 100

    # One batch: the short text padded to the long one's length, the long one truncated; each
    # the same as when encoded alone (padding changes nothing).
    pair = embedding.embed_questions([SHORT, LONG])
    assert np.abs(pair[0] - embedding.embed_one(SHORT)).max() < 1e-6
    assert np.abs(pair[1] - embedding.embed_one(LONG)).max() < 1e-6
    assert embedding.embed_questions([]).shape == (0, 384)


def test_runs_of_embedding_batch_size_or_tokens_per_run_keep_the_order(settings, monkeypatch):
    settings.EMBEDDING_RUNTIME = "onnx"
    texts = [*TEXTS, LONG, SHORT, LONG[:300]]
    expected = sentence_transformers(texts)
    settings.EMBEDDING_BATCH_SIZE = 2  # several runs, sorted by length inside
    assert np.abs(embedding.embed(texts) - expected).max() < 1e-6
    settings.EMBEDDING_BATCH_SIZE = 64
    monkeypatch.setattr(embedding, "TOKENS_PER_RUN", 300)  # the long text alone, then the rest
    assert np.abs(embedding.embed(texts) - expected).max() < 1e-6


def test_runs_split_a_batch_where_padding_would_cost_more_than_another_pass(settings):
    # Longest first, as OnnxEncoder.encode sorts them. A follow-up searched with the question
    # before it (twice the tokens) goes alone instead of doubling the short questions' work.
    assert embedding.runs([20] + [10] * 13, 64) == [(0, 1), (1, 14)]
    assert embedding.runs([9] * 32, 64) == [(0, 32)]  # one length: one pass
    assert embedding.runs([11] + [10] * 5, 64) == [(0, 6)]  # padding 5 tokens beats a pass
    assert embedding.runs([], 64) == []
    # The limits still hold: EMBEDDING_BATCH_SIZE texts and TOKENS_PER_RUN padded tokens a pass
    # (one text longer than that alone), and the passes cover every text once, in order.
    lengths = sorted([256, 256, 256, 256, 256, 40, 39, 12, 11, 10, 9, 9, 8, 3, 1] * 5, reverse=True)
    for size in (1, 2, 64):
        slices = embedding.runs(lengths, size)
        assert [i for start, end in slices for i in range(start, end)] == list(range(len(lengths)))
        for start, end in slices:
            assert end - start <= size
            assert end - start == 1 or (end - start) * lengths[start] <= embedding.TOKENS_PER_RUN
    # Mixed lengths in one batch: each text's vector is the one it gets alone.
    settings.EMBEDDING_RUNTIME = "onnx"
    batch = [*TEXTS[:3] * 5, f"{TEXTS[0]}\n{TEXTS[1]}", SHORT]
    together = embedding.embed_questions(batch)
    alone = np.stack([embedding.embed_one(text) for text in batch])
    assert np.abs(together - alone).max() < 1e-6


def test_no_exported_files_is_an_error_saying_what_to_run(fresh_export, settings):
    settings.EMBEDDING_RUNTIME = "onnx"
    with pytest.raises(ImproperlyConfigured, match="manage.py export_model"):
        embedding.embed_questions(TEXTS)
    assert not any(fresh_export.iterdir())  # nothing exported on the way

    path, exported = embedding.export_onnx()
    assert exported and path.parent == fresh_export
    tokenizer = embedding.tokenizer_file(path)
    assert sorted(fresh_export.iterdir()) == sorted([path, tokenizer])  # no temporary file left
    for written in (path, tokenizer):
        assert written.stat().st_mode & 0o777 == 0o644  # another user's service can read it
    expected = embedding.embed_questions(TEXTS)
    assert np.abs(expected - sentence_transformers(TEXTS)).max() < 1e-6
    assert embedding.export_onnx() == (path, False)  # there already: a no-op


@pytest.fixture
def checkout_export() -> Path:
    """This checkout's exported model file (conftest's model_ready made sure of it)."""
    return embedding.onnx_path()


def test_an_unreadable_export_is_exported_again(checkout_export, fresh_export):
    # This checkout's export copied in as the good one to damage: exporting it here first would
    # be a fourth export, of what test_no_exported_files_... tests.
    for source in (checkout_export, embedding.tokenizer_file(checkout_export)):
        shutil.copy2(source, fresh_export / source.name)
    path = embedding.onnx_path()
    assert path.parent == fresh_export and path.exists()
    for damage in ("corrupt", "cut short", "missing"):
        if damage == "corrupt":
            path.write_bytes(b"not an onnx model")
        elif damage == "cut short":
            path.write_bytes(path.read_bytes()[:1000])  # a copy interrupted half-way
        else:
            path.unlink()
        embedding._onnx = None  # a new process: it says what to run
        with pytest.raises(ImproperlyConfigured, match="manage.py export_model"):
            embedding.embed_questions(TEXTS)
        assert embedding.export_onnx() == (path, True), damage
        assert path.stat().st_size > 1_000_000, damage
        embedding._onnx = None  # a new process
        assert np.abs(embedding.embed_questions(TEXTS) - sentence_transformers(TEXTS)).max() < 1e-6


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


TORCH_LOADED = (
    "maps = open('/proc/self/maps').read(); "
    "print(embedding.is_ready(), 'torch' in sys.modules, 'libtorch' in maps, "
    "'onnxruntime' in maps)"
)


def test_a_process_embedding_on_onnx_never_loads_torch():
    embedding.export_onnx()  # this checkout's files, as make install leaves them
    result = run_python(
        "import django, sys; django.setup(); from faq import embedding; embedding.warm(); "
        "embedding.embed(['The FAQ text of an entry.', 'Another one'], ['question', 'answer']); "
        "embedding.embed_query('Do you deliver?'); " + TORCH_LOADED,
        EMBEDDING_RUNTIME="onnx",
        EMBEDDING_MULTILINGUAL="off",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False", "True"]


def test_a_process_without_the_export_says_what_to_run_and_exports_nothing(tmp_path):
    result = run_python(
        "import django, sys; django.setup(); from faq import embedding\n"
        "try:\n    embedding.warm()\n"
        "except Exception as error:\n    print(type(error).__name__, error, file=sys.stderr)\n"
        + TORCH_LOADED.replace("; ", "\n"),
        EMBEDDING_RUNTIME="onnx",
        EMBEDDING_MULTILINGUAL="off",
        EMBEDDING_ONNX_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False", "False"]
    assert "ImproperlyConfigured" in result.stderr
    assert "Run `.venv/bin/python manage.py export_model` once" in result.stderr
    assert not any(tmp_path.iterdir())


def test_an_unknown_runtime_is_a_configuration_error():
    result = run_python("import shopbot.settings", EMBEDDING_RUNTIME="tensorflow")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert 'EMBEDDING_RUNTIME must be "torch" or "onnx"' in result.stderr
