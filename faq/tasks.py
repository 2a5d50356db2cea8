"""
The knowledge layer's background jobs (lib/jobs.py runs them on the worker): re-embedding entries
after an owner's edit or an import, and rebuilding a shop's search index after entries are deleted,
published or hidden. faq/indexing.py queues them (`refresh_later`, `reindex_later`).

A shop's jobs share a lock, so they run one at a time in the order they were queued; a failed
re-embedding is retried (INDEXING_TRIES runs, 2 s, then 4, 8... between them), and what still
fails shows in the owner's FAQ list (owner/entries.py), where "Re-embed selected entries" queues
it again.
"""

from __future__ import annotations

from django.conf import settings

from faq import indexing, search_index
from lib.jobs import Retry, app


def _pause(failed: int) -> float:
    return 2.0**failed


@app.task(
    name=indexing.REFRESH, queue="index", retry=Retry(lambda: settings.INDEXING_TRIES, _pause)
)
def refresh(shop_id: int, entry_ids: list[int]) -> int:
    """Embed what changed in these entries of `shop_id`, and its search index with them."""
    return indexing.refresh(entry_ids)


@app.task(
    name=indexing.REINDEX, queue="index", retry=Retry(lambda: settings.INDEXING_TRIES, _pause)
)
def reindex(shop_id: int) -> None:
    """Rebuild the shop's search index if its published vectors changed."""
    search_index.update_index_if_changed(shop_id)
