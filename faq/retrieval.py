"""
Retrieval: which published FAQ entries of a shop answer a customer's text, and how sure we are.

`search(shop, text, limit)` is the one entry point; the chat and `manage.py eval_retrieval` both
call it. It is synchronous (embedding and SQL): async callers wrap it in sync_to_async.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from faq import embedding
from faq.models import FAQEntry, Shop

# Cosine similarity above which the best entry is trusted enough to answer with.
CONFIDENT_SCORE = 0.55


@dataclass
class Hit:
    entry: FAQEntry
    score: float


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    confident: bool = False

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def search(shop: Shop, text: str, limit: int = 5) -> SearchResult:
    text = " ".join(text.split())
    if not text:
        return SearchResult()
    query = embedding.embed_one(text)
    # Exact scan over this shop's vectors: a shop has at most a few thousand rows, and a filtered
    # HNSW scan could miss entries when many shops share the index.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT v.entry_id, MAX(1 - (v.embedding <=> %s::vector)) AS score
            FROM faq_faqvector v JOIN faq_faqentry e ON e.id = v.entry_id
            WHERE e.shop_id = %s AND e.published AND v.model_name = %s
            GROUP BY v.entry_id
            ORDER BY score DESC
            LIMIT %s
            """,
            [query.tolist(), shop.pk, embedding.model_name(), limit],
        )
        rows = cursor.fetchall()
    entries = FAQEntry.objects.in_bulk([entry_id for entry_id, _ in rows])
    hits = [Hit(entries[entry_id], float(score)) for entry_id, score in rows if entry_id in entries]
    return SearchResult(hits=hits, confident=bool(hits) and hits[0].score >= CONFIDENT_SCORE)
