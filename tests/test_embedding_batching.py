"""
Micro-batching of customers' questions (faq/embedding.py, QueryBatcher), with the real model.

Concurrency is made deterministic without timing: the batcher's encode function is the real
`embedding.embed`, but the first batch is held (an Event) until every other caller has queued its
text, so the second batch must hold all of them.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from faq import embedding, search
from faq.embedding import QueryBatcher
from harness.questions import DEMO_QUESTIONS

QUESTIONS = [
    *DEMO_QUESTIONS,
    "and on Sundays?",
    "Is there a fee for same-day delivery, and how late can I order for it?",
]


class HeldEncoder:
    """The real model (as the batcher runs it: `embed_questions`), but the first batch waits until
    `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(60), "the test never released the first batch"
        return embedding.embed_questions(texts)


def queued(batcher: QueryBatcher) -> int:
    return batcher._queue.qsize()


def wait_until_queued(batcher: QueryBatcher, count: int) -> None:
    """Until `count` texts wait in the queue (the callers' threads are running)."""
    event = threading.Event()
    while queued(batcher) < count:
        event.wait(0.001)  # polling other threads' progress; bounded by the executor's join


def submit_all(
    pool: ThreadPoolExecutor, batcher: QueryBatcher, texts: list[str], encoder: HeldEncoder
) -> list[Future]:
    """Every text from its own thread: the first one alone, the rest while it is being encoded;
    the first batch released once all the rest are queued."""
    first = pool.submit(batcher.embed, texts[0])
    assert encoder.started.wait(60)
    rest = [pool.submit(batcher.embed, text) for text in texts[1:]]
    wait_until_queued(batcher, len(texts) - 1)
    encoder.release.set()
    return [first, *rest]


def ask_all(batcher: QueryBatcher, texts: list[str], encoder: HeldEncoder) -> list[np.ndarray]:
    """submit_all's vectors, in the order of `texts`."""
    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        return [future.result(60) for future in submit_all(pool, batcher, texts, encoder)]


def test_concurrent_questions_are_encoded_together_and_get_their_own_vectors():
    encoder = HeldEncoder()
    batcher = QueryBatcher(wait_ms=5, max_batch=32, encode=encoder)

    vectors = ask_all(batcher, QUESTIONS, encoder)

    assert batcher.calls == len(QUESTIONS)
    assert batcher.batches == 2 < batcher.calls
    assert batcher.largest == len(QUESTIONS) - 1
    assert encoder.batches[0] == QUESTIONS[:1]
    assert sorted(encoder.batches[1]) == sorted(QUESTIONS[1:])
    # Each caller got its own text's vector, equal to the unbatched one.
    for text, vector in zip(QUESTIONS, vectors, strict=True):
        alone = embedding.embed_one(text)
        assert vector.shape == alone.shape == (384,)
        np.testing.assert_allclose(vector, alone, rtol=0, atol=1e-5)
        assert float(vector @ alone) > 0.99999


def test_a_question_alone_on_a_quiet_server_does_not_wait_for_companions():
    # A ten-minute wait: were the lone question held for it, result() would time out.
    batcher = QueryBatcher(wait_ms=600_000, max_batch=32)
    answers: list[np.ndarray] = []
    caller = threading.Thread(
        target=lambda: answers.append(batcher.embed("Do you sell gift cards?")), daemon=True
    )
    caller.start()
    caller.join(60)
    assert answers, "the lone question was held back waiting for companions"
    vector = answers[0]
    np.testing.assert_allclose(
        vector, embedding.embed_one("Do you sell gift cards?"), rtol=0, atol=1e-5
    )
    assert batcher.calls == batcher.batches == 1


def test_a_batch_holds_at_most_max_batch():
    encoder = HeldEncoder()
    batcher = QueryBatcher(wait_ms=5, max_batch=3, encode=encoder)

    vectors = ask_all(batcher, QUESTIONS, encoder)

    assert [len(batch) for batch in encoder.batches] == [1, 3, 3, 1]
    assert batcher.batches == 4 and batcher.largest == 3
    for text, vector in zip(QUESTIONS, vectors, strict=True):
        np.testing.assert_allclose(vector, embedding.embed_one(text), rtol=0, atol=1e-5)


def test_an_encoding_error_reaches_every_waiting_caller_and_the_batcher_goes_on():
    encoder = HeldEncoder()
    failing = {"on": True}

    def encode(texts: list[str]) -> np.ndarray:
        vectors = encoder(texts)
        if failing["on"] and len(encoder.batches) == 2:
            raise RuntimeError("model exploded")
        return vectors

    batcher = QueryBatcher(wait_ms=5, max_batch=32, encode=encode)
    with ThreadPoolExecutor(max_workers=len(QUESTIONS)) as pool:
        first, *rest = submit_all(pool, batcher, QUESTIONS, encoder)
        assert first.result(60).shape == (384,)
        for future in rest:
            with pytest.raises(RuntimeError, match="model exploded"):
                future.result(60)

    # The worker survived: the next question is answered, with the right vector.
    failing["on"] = False
    vector = batcher.embed("Do you sell gift cards?")
    np.testing.assert_allclose(
        vector, embedding.embed_one("Do you sell gift cards?"), rtol=0, atol=1e-5
    )
    assert batcher.batches == 3
    assert batcher.calls == len(QUESTIONS) + 1


def test_wait_zero_turns_batching_off(settings, monkeypatch):
    monkeypatch.setattr(embedding, "_batchers", {})
    settings.EMBEDDING_BATCH_WAIT_MS = 0
    assert embedding.query_batcher() is None
    np.testing.assert_array_equal(
        embedding.embed_query("What are your opening hours?"),
        embedding.embed_one("What are your opening hours?"),
    )
    assert not embedding._batchers  # no worker thread was started


def test_embed_query_uses_one_batcher_per_process(settings, monkeypatch):
    monkeypatch.setattr(embedding, "_batchers", {})
    settings.EMBEDDING_BATCH_WAIT_MS = 5
    settings.EMBEDDING_QUERY_BATCH = 16
    vector = embedding.embed_query("Can I choose a delivery time?")
    batcher = embedding.query_batcher()
    assert batcher is embedding.query_batcher()
    assert batcher.max_batch == 16 and batcher.wait == pytest.approx(0.005)
    assert batcher.calls == batcher.batches == 1
    np.testing.assert_allclose(
        vector, embedding.embed_one("Can I choose a delivery time?"), rtol=0, atol=1e-5
    )


@pytest.mark.django_db
def test_search_gives_the_same_answers_with_batching_on_and_off(demo_shop, settings, monkeypatch):
    texts = QUESTIONS[:6]
    results = {}
    for wait in (0, 5):
        monkeypatch.setattr(embedding, "_batchers", {})
        settings.EMBEDDING_BATCH_WAIT_MS = wait
        results[wait] = [search.search(demo_shop, text) for text in texts]
    batcher = embedding._batchers.get(embedding.default_model())
    assert batcher is not None and batcher.calls == len(texts)
    for off, on in zip(results[0], results[5], strict=True):
        assert [hit.entry.pk for hit in on.hits] == [hit.entry.pk for hit in off.hits]
        assert [hit.score for hit in on.hits] == pytest.approx(
            [hit.score for hit in off.hits], abs=1e-5
        )
        assert on.confident == off.confident
