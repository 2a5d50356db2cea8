"""
Keeping FAQ vectors, and the shops' search indexes, in step with the entries.

`refresh(entry_ids)` compares the texts each entry should be represented by with the rows stored
for its shop's models (`embedding.shop_models`: by the shop's language), deletes what is obsolete
(texts that are gone, other models' rows) and embeds only what is missing, in batches per model;
then rebuilds the search index of each shop whose published vectors changed
(faq/search_index.py), in the same transaction: a search sees the old vectors with the old index,
or the new with the new.

Web processes never embed: `refresh_later` and `reindex_later` queue jobs (faq/tasks.py) in the
owner's transaction, which the worker runs (`manage.py worker`); `waiting_changes` counts what it
has not done yet, for the owner's admin.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from faq import embedding, search_index
from faq.models import FAQEntry, FAQVector, Shop, text_hash
from lib import jobs

# The names of faq/tasks.py's jobs (it imports this module, so they are queued by name).
REFRESH, REINDEX = "faq.refresh", "faq.reindex"

FRESH, STALE, MISSING = "fresh", "stale", "missing"

# A refresh that adds at least this many vectors (an import, a new shop) also refreshes the
# planner's statistics of the two tables search joins. Until autovacuum gets to it, PostgreSQL
# takes the new rows for one or two and joins a shop's vectors to its entries by a nested loop:
# 3.6 ms for the demo shop's search query instead of 1.2 ms, and worse the bigger the shop.
ANALYZE_AFTER = 100


def refresh(entry_ids: Iterable[int]) -> int:
    """Bring the vectors of these entries up to date. Returns how many texts were embedded."""
    entries = list(FAQEntry.objects.filter(pk__in=list(entry_ids)).select_related("shop"))
    if not entries:
        return 0
    models = {e.pk: embedding.shop_models(e.shop.language) for e in entries}
    names = {model: embedding.model_name(model) for ms in models.values() for model in ms}
    stored: dict[int, dict[tuple[str, str, str], int]] = {e.pk: {} for e in entries}
    for row in FAQVector.objects.filter(entry__in=entries, model_name__in=names.values()).values(
        "id", "entry_id", "kind", "text_hash", "model_name"
    ):
        stored[row["entry_id"]][(row["model_name"], row["kind"], row["text_hash"])] = row["id"]

    to_embed: dict[str, list[tuple[FAQEntry, str, str]]] = {model: [] for model in names}
    keep: set[int] = set()
    for entry in entries:
        texts = entry.embedding_texts()
        for model in models[entry.pk]:
            for kind, text in texts:
                row_id = stored[entry.pk].get((names[model], kind, text_hash(text)))
                if row_id is None:
                    to_embed[model].append((entry, kind, text))
                else:
                    keep.add(row_id)

    # Embed before opening the transaction: the model is the slow part and holds no locks.
    # (Nothing new, e.g. only the category changed: the model is not even called.)
    vectors = {
        model: embedding.embed([t for _, _, t in rows], [k for _, k, _ in rows], model)
        for model, rows in to_embed.items()
        if rows
    }
    with transaction.atomic():
        # Rows of other models and of texts that are gone.
        FAQVector.objects.filter(entry__in=entries).exclude(pk__in=keep).delete()
        FAQVector.objects.bulk_create(
            FAQVector.of(entry, kind, text, names[model], vector)
            for model, rows in vectors.items()
            for (entry, kind, text), vector in zip(to_embed[model], rows, strict=True)
        )
        embedded = sum(len(rows) for rows in to_embed.values())
        if embedded >= ANALYZE_AFTER:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE faq_faqvector, faq_faqentry")
        # The shops' search indexes with their vectors, committed together: the next customer (in
        # any process) loads the new index with the new vectors, and until then has the old pair.
        for shop_id in sorted({entry.shop_id for entry in entries}):
            search_index.update_index_if_changed(shop_id)
    return embedded


def reindex_later(shop_ids: Iterable[int]) -> None:
    """Queue a rebuild of these shops' search indexes (the worker does it once this transaction
    commits), for when their published vectors change without a re-embedding: entries deleted,
    or published or hidden in bulk (queryset.update sends no signal)."""
    # Deleting 1,000 entries sends 1,000 signals: one waiting rebuild per shop is enough (the
    # queueing lock drops the others), and it runs after the shop's re-embeddings (the lock).
    for shop_id in sorted(set(shop_ids)):
        jobs.defer(
            REINDEX, lock=f"shop-{shop_id}", queueing_lock=f"reindex-{shop_id}", shop_id=shop_id
        )


_batch = threading.local()


def refresh_later(entry_ids: Iterable[int]) -> None:
    """Queue the re-embedding of these entries, one job per shop, in the current transaction: the
    worker runs it once the change is committed (`refresh` and the shop's index).

    Inside `batched()` the ids are collected instead, and queued together at its end.
    """
    pending = getattr(_batch, "pending", None)
    if pending is not None:
        pending.update(entry_ids)
        return
    by_shop: dict[int, list[int]] = defaultdict(list)
    for pk, shop_id in FAQEntry.objects.filter(pk__in=list(entry_ids)).values_list("pk", "shop_id"):
        by_shop[shop_id].append(pk)
    for shop_id, ids in sorted(by_shop.items()):
        jobs.defer(REFRESH, lock=f"shop-{shop_id}", shop_id=shop_id, entry_ids=sorted(ids))


def waiting_changes(shop_ids: Iterable[int]) -> int:
    """How many queued changes to these shops' entries the worker has not applied yet."""
    return jobs.waiting(REFRESH, shop_id__in=list(shop_ids)).count()


def failed_entry_ids(shop_ids: Iterable[int]) -> list[int]:
    """Entries of these shops whose re-embedding failed every try and that are still not fresh
    (the owner's "Re-embed selected entries" queues them again)."""
    ids = set()
    for args in jobs.failed_jobs(REFRESH, shop_id__in=list(shop_ids)).values_list(
        "args", flat=True
    ):
        ids.update(args.get("entry_ids", []))
    return sorted(stale_entry_ids(FAQEntry.objects.filter(pk__in=ids))) if ids else []


@contextmanager
def batched(now: bool = False) -> Iterator[None]:
    """Collect the re-embedding of every entry saved inside, and queue it as one job per shop.
    For imports and bulk admin actions: the model is far faster on a batch. `now`: refresh here
    instead, at the end (a command whose next step needs the vectors, never a web process)."""
    if getattr(_batch, "pending", None) is not None:  # nested: the outer block refreshes
        yield
        return
    _batch.pending = pending = set()
    try:
        yield
    finally:
        _batch.pending = None
    if pending and now:
        refresh(pending)
    elif pending:
        refresh_later(pending)


def states(entries: Iterable[FAQEntry]) -> dict[int, str]:
    """Each entry's embedding state: fresh, stale (changed text or another model, e.g. after the
    shop's language changed) or missing."""
    entries = list(entries)
    languages = dict(
        Shop.objects.filter(pk__in={e.shop_id for e in entries}).values_list("pk", "language")
    )
    stored: dict[int, set[tuple[str, str, str]]] = {e.pk: set() for e in entries}
    for entry_id, kind, hash_, model in FAQVector.objects.filter(entry__in=entries).values_list(
        "entry_id", "kind", "text_hash", "model_name"
    ):
        stored[entry_id].add((model, kind, hash_))
    result = {}
    for entry in entries:
        names = [embedding.model_name(m) for m in embedding.shop_models(languages[entry.shop_id])]
        texts = entry.embedding_texts()
        expected = {(name, kind, text_hash(text)) for name in names for kind, text in texts}
        if not stored[entry.pk]:
            result[entry.pk] = MISSING
        elif stored[entry.pk] == expected:
            result[entry.pk] = FRESH
        else:
            result[entry.pk] = STALE
    return result


def stale_entry_ids(queryset=None) -> list[int]:
    entries = queryset if queryset is not None else FAQEntry.objects.all()
    return [pk for pk, state in states(entries).items() if state != FRESH]
