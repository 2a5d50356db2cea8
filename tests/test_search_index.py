"""The shops' search indexes: built when entries change (not on a customer's question), stored for
every process, and held in a bounded per-process cache. Real model, real PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from faq import embedding, search_index
from faq.models import FAQEntry, SearchIndex
from faq.search import search
from faq.search_index import IndexCache, ShopIndex


def fake_index(signature: tuple) -> ShopIndex:
    """A small index for the cache's own tests (its contents do not matter there)."""
    return search_index.build_index(
        signature, [1, 2], ["question", "question"], np.eye(2, 384, dtype=np.float32), [[], []]
    )


def test_the_cache_is_bounded_and_drops_the_least_recently_used_shop():
    cache = IndexCache(size=2)
    cache.put(1, fake_index((1, 1)))
    cache.put(2, fake_index((2, 2)))
    assert cache.get(1, (1, 1)) is not None  # shop 1 is now the most recently used
    cache.put(3, fake_index((3, 3)))
    assert len(cache) == 2
    assert 2 not in cache  # the least recently used went
    assert 1 in cache and 3 in cache
    # Another signature (the shop was edited elsewhere) is a miss, not a stale answer.
    assert cache.get(1, (9, 9)) is None


def test_a_stored_index_loads_back_the_same(demo_shop):
    search(demo_shop, "opening hours")
    stored = _stored(demo_shop)
    index = ShopIndex.from_bytes(bytes(stored.data))
    built = search_index.cache.get(demo_shop.pk, index.signature)
    assert built is not None
    assert index.threshold == built.threshold
    assert index.wording_bar == built.wording_bar
    assert index.analysis == built.analysis == "simple"  # an English shop's words, as written
    np.testing.assert_array_equal(index.entry_ids, built.entry_ids)
    assert index.full_lexicon.vocabulary == built.full_lexicon.vocabulary
    np.testing.assert_allclose(
        index.full_lexicon.weights.toarray(), built.full_lexicon.weights.toarray()
    )
    if built.classifier is not None:
        np.testing.assert_array_equal(index.classifier, built.classifier)


@pytest.mark.django_db
def test_an_edit_builds_the_index_before_the_next_search_and_other_processes_see_it(
    demo_shop, django_capture_on_commit_callbacks, monkeypatch
):
    search(demo_shop, "do you repair bicycles")
    old_index = search_index.cache.get(demo_shop.pk, before_signature := _signature(demo_shop))
    assert old_index is not None

    entry = FAQEntry.objects.get(shop=demo_shop, question="What are your opening hours?")
    entry.alternatives += "\ndo you repair bicycles"
    with django_capture_on_commit_callbacks(execute=True):
        entry.save()  # re-embeds, then builds and stores the shop's index
    stored = _stored(demo_shop)
    assert (stored.vector_count, stored.vector_id_sum) == _signature(demo_shop) != before_signature

    # Another process still holds the old index: its next search sees the new signature and
    # loads the stored index instead of building one.
    search_index.cache.put(demo_shop.pk, old_index)
    built = []
    monkeypatch.setattr(
        search_index, "update_index", lambda shop_id, model=None: built.append(shop_id)
    )
    result = search(demo_shop, "do you repair bicycles")
    assert built == []
    assert result.best.entry == entry
    assert search_index.cache.get(demo_shop.pk, _signature(demo_shop)) is not None


@pytest.mark.django_db
def test_deleting_or_unpublishing_an_entry_rebuilds_the_stored_index(
    demo_shop, django_capture_on_commit_callbacks
):
    search(demo_shop, "gift cards")
    entry = FAQEntry.objects.get(shop=demo_shop, question="Do you sell gift cards?")
    with django_capture_on_commit_callbacks(execute=True):
        entry.delete()
    stored = _stored(demo_shop)
    assert (stored.vector_count, stored.vector_id_sum) == _signature(demo_shop)
    assert all(hit.entry.pk != entry.pk for hit in search(demo_shop, "gift cards").hits)


@pytest.mark.django_db
def test_without_a_stored_index_the_first_search_builds_one(demo_shop):
    SearchIndex.objects.filter(shop=demo_shop).delete()
    search_index.cache.clear()
    assert search(demo_shop, "What are your opening hours?").confident
    assert SearchIndex.objects.filter(shop=demo_shop).exists()


def _signature(shop) -> tuple[int, int]:
    return search_index.published_signature(shop.pk)


def _stored(shop) -> SearchIndex:
    """The shop's stored index of its own (English: MiniLM's) vectors."""
    return SearchIndex.objects.get(shop=shop, model_name=embedding.model_name())


@pytest.mark.django_db
def test_an_index_stored_by_an_earlier_version_is_rebuilt_not_used(demo_shop, monkeypatch):
    search(demo_shop, "opening hours")
    signature = _signature(demo_shop)
    # As stored before INDEX_VERSION existed, or by an earlier scoring: rebuilt on the next search
    # (a process starting on new code must not rank with an index the old code computed).
    monkeypatch.setattr(search_index, "INDEX_VERSION", search_index.INDEX_VERSION + 1)
    search_index.cache.clear()
    assert ShopIndex.from_bytes(bytes(_stored(demo_shop).data)) is None
    result = search(demo_shop, "What are your opening hours?")
    assert result.best.entry.question == "What are your opening hours?"
    stored = _stored(demo_shop)
    assert ShopIndex.from_bytes(bytes(stored.data)) is not None  # stored again, current version
    assert search_index.cache.get(demo_shop.pk, signature) is not None


def test_the_candidates_columns_are_what_numpys_set_operations_give():
    """faq/search.py's `_index_columns` and `_candidates` (a binary search of the index's sorted
    entry ids and a mark per column) give what np.isin, np.unique(return_inverse=True) and a
    search of the index gave, rows of entries missing from the index and an empty index
    included; and `score_entries` groups entry numbers as np.unique did."""
    from faq.search import _candidates, _index_columns

    rng = np.random.default_rng(32)
    for _ in range(500):
        entry_ids = np.unique(rng.integers(1, 80, size=rng.integers(0, 30))).astype(np.int64)
        row_entries = rng.integers(1, 90, size=rng.integers(0, 60)).astype(np.int64)
        known, row_columns = _index_columns(entry_ids, row_entries)
        assert np.array_equal(known, np.isin(row_entries, entry_ids))
        if not known.any():
            continue
        candidates, codes, columns = _candidates(entry_ids, row_columns[known])
        expected, expected_codes = np.unique(row_entries[known], return_inverse=True)
        assert np.array_equal(candidates, expected) and np.array_equal(codes, expected_codes)
        assert np.array_equal(columns, np.searchsorted(entry_ids, expected))

        sims = rng.random((2, len(codes))).astype(np.float32)
        scores = search_index.score_entries(sims, codes, len(candidates))
        for entry in range(len(candidates)):  # each entry: 0.4 best + 0.6 mean of its best two
            best_two = np.sort(sims[:, codes == entry], axis=1)[:, ::-1][:, :2]
            dense = 0.4 * best_two[:, 0] + 0.6 * best_two.mean(axis=1)
            assert np.all(scores[:, entry] >= dense - 1e-6)  # plus the vote, never negative
