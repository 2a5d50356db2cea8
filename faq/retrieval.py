"""
Retrieval: which published FAQ entries of a shop answer a customer's text, and how sure we are.

`search(shop, text, limit)` is the one entry point; the chat and `manage.py eval_retrieval` both
call it. It is synchronous (embedding and SQL): async callers wrap it in sync_to_async.

How an entry is scored (measured on the public sets in ../shared/eval, see README):
- Each entry has several vectors: its question, question + answer, and each alternative phrasing.
  PostgreSQL (pgvector) returns the shop's vectors nearest to the query.
- An entry's score blends its best vector with the mean of its best two
  (0.4 * best + 0.6 * mean of top two): an entry that several of its phrasings agree on beats one
  that a single stray phrasing happens to match.
- Plus a small vote (0.1 * share) among the query's ten nearest vectors of the whole shop.

How confidence is decided, per shop, from the shop's own FAQ only (never from customer queries):
- Each alternative phrasing (or each question, for a shop with fewer than 20 phrasings) is used as
  a pretend question with its own entry removed. The best score it still gets is what an on-topic
  question that the FAQ does not answer looks like for this shop.
- The threshold is the 62.5th percentile of those scores: a shop whose entries are close to one
  another (say, a sports app with 57 similar intents) needs a higher bar than a florist.
- Shops without phrasings get at most 0.63: their questions sit much closer to each other than
  customers' wording sits to them.
The threshold is recomputed when the shop's published vectors change, and cached per process.

Measured and not kept: PostgreSQL full-text ranking fused with the dense score (at best +0.01 on
some sets, -0.04 on others), a hub-entry penalty, a required margin between the top two.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from django.db import connection
from django.db.models import Count, Sum

from faq import embedding
from faq.models import FAQEntry, FAQVector, Shop

BEST_TWO_MIX = 0.6
VOTE_NEIGHBOURS = 10
VOTE_WEIGHT = 0.1
# Nearest vectors fetched per query. Entries outside them cannot reach the top anyway.
CANDIDATES = 100

CALIBRATION_QUANTILE = 0.625
MIN_PHRASINGS_FOR_CALIBRATION = 20
FAQ_ONLY_THRESHOLD_CAP = 0.63


@dataclass
class Hit:
    entry: FAQEntry
    score: float


@dataclass
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    confident: bool = False
    threshold: float | None = None

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def search(shop: Shop, text: str, limit: int = 5) -> SearchResult:
    """The shop's published entries best matching `text`, best first, and whether the best one is
    good enough to answer with."""
    text = " ".join(text.split())
    if not text:
        return SearchResult()
    query = embedding.embed_one(text)
    rows = _nearest_vectors(shop, query)
    if not rows:
        return SearchResult()
    signature = (rows[0][3], rows[0][4])  # (count, sum of ids) of the shop's published vectors
    threshold = _threshold(shop, signature)

    entry_ids = np.array([row[0] for row in rows])
    sims = np.array([row[2] for row in rows], dtype=np.float32)
    unique_ids, codes = np.unique(entry_ids, return_inverse=True)
    scores = score_entries(sims[None, :], codes, len(unique_ids))[0]
    order = np.argsort(-scores)[:limit]
    entries = FAQEntry.objects.in_bulk([int(unique_ids[i]) for i in order])
    hits = [
        Hit(entries[int(unique_ids[i])], float(scores[i]))
        for i in order
        if int(unique_ids[i]) in entries
    ]
    confident = bool(hits) and hits[0].score >= threshold
    return SearchResult(hits=hits, confident=confident, threshold=threshold)


def score_entries(sims: np.ndarray, vec_entry: np.ndarray, n_entries: int) -> np.ndarray:
    """Entry scores from vector similarities.

    sims: (queries, vectors) cosine similarities, -inf where a vector is left out.
    vec_entry: (vectors,) the entry number (0..n_entries-1) of each vector.
    Returns (queries, n_entries), -inf for an entry with no usable vector.
    """
    n_queries = sims.shape[0]
    scores = np.full((n_queries, n_entries), -np.inf, dtype=np.float32)
    for e in range(n_entries):
        own = sims[:, vec_entry == e]
        if own.shape[1] == 0:
            continue
        best = own.max(axis=1)
        if own.shape[1] >= 2:
            top_two = np.sort(own, axis=1)[:, -2:]
            # An entry with one usable vector: its mean of two is that vector alone.
            mean_two = np.where(np.isfinite(top_two[:, 0]), top_two.mean(axis=1), best)
        else:
            mean_two = best
        scores[:, e] = (1 - BEST_TWO_MIX) * best + BEST_TWO_MIX * mean_two

    k = min(VOTE_NEIGHBOURS, sims.shape[1])
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    for q in range(n_queries):
        near_sims = sims[q, nearest[q]]
        usable = np.isfinite(near_sims)
        votes = np.bincount(
            vec_entry[nearest[q][usable]],
            weights=np.maximum(near_sims[usable], 0),
            minlength=n_entries,
        )
        if votes.sum() > 0:
            scores[q] += VOTE_WEIGHT * votes / votes.sum()
    return scores


def calibrate_threshold(vectors: np.ndarray, vec_entry: np.ndarray, kinds: list[str]) -> float:
    """The shop's confidence threshold, from its own vectors only (see the module docstring)."""
    kinds_arr = np.array(kinds)
    n_entries = int(vec_entry.max()) + 1 if len(vec_entry) else 0
    phrasings = np.flatnonzero(kinds_arr == FAQVector.ALTERNATIVE)
    use_phrasings = len(phrasings) >= MIN_PHRASINGS_FOR_CALIBRATION
    probes = phrasings if use_phrasings else np.flatnonzero(kinds_arr == FAQVector.QUESTION)
    if n_entries < 2 or len(probes) == 0:
        return FAQ_ONLY_THRESHOLD_CAP
    sims = vectors[probes] @ vectors.T
    # Leave the probe's whole entry out: what remains is a near miss, not an answer.
    sims[vec_entry[None, :] == vec_entry[probes][:, None]] = -np.inf
    best = score_entries(sims, vec_entry, n_entries).max(axis=1)
    best = best[np.isfinite(best)]
    if len(best) == 0:
        return FAQ_ONLY_THRESHOLD_CAP
    threshold = float(np.quantile(best, CALIBRATION_QUANTILE))
    if not use_phrasings:
        threshold = min(threshold, FAQ_ONLY_THRESHOLD_CAP)
    return threshold


_thresholds: dict[int, tuple[tuple, float]] = {}
_thresholds_lock = threading.Lock()


def _threshold(shop: Shop, signature: tuple) -> float:
    cached = _thresholds.get(shop.pk)
    if cached and cached[0] == signature:
        return cached[1]
    _, entry_ids, kinds, vectors = _all_vectors(shop)
    _, vec_entry = np.unique(entry_ids, return_inverse=True)
    threshold = calibrate_threshold(vectors, vec_entry, kinds)
    with _thresholds_lock:
        _thresholds[shop.pk] = (signature, threshold)
    return threshold


def shop_threshold(shop: Shop) -> float | None:
    """The shop's current confidence threshold (for the admin), or None without vectors."""
    totals = _published_vectors(shop).aggregate(count=Count("id"), id_sum=Sum("id"))
    if not totals["count"]:
        return None
    # The same signature as search's window totals, so both share the cached threshold.
    return _threshold(shop, (totals["count"], totals["id_sum"]))


_SHOP_VECTORS = """
    SELECT v.id, v.entry_id, v.kind, v.embedding
    FROM faq_faqvector v JOIN faq_faqentry e ON e.id = v.entry_id
    WHERE e.shop_id = %s AND e.published AND v.model_name = %s
"""


def _nearest_vectors(shop: Shop, query: np.ndarray) -> list[tuple]:
    """(entry_id, kind, similarity, count, id_sum) of the shop's nearest published vectors.

    The scan is exact over the shop's own rows (a small shop has hundreds, a big one thousands):
    the HNSW index serves whole-table queries, but filtered by shop it could miss entries.
    The window totals are over all the shop's vectors and tell when the threshold is stale.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH shop_vectors AS MATERIALIZED ({_SHOP_VECTORS})
            SELECT entry_id, kind, 1 - (embedding <=> %s::vector) AS similarity,
                   COUNT(*) OVER (), SUM(id) OVER ()
            FROM shop_vectors
            ORDER BY similarity DESC
            LIMIT %s
            """,
            [shop.pk, embedding.model_name(), query.tolist(), CANDIDATES],
        )
        return cursor.fetchall()


def _published_vectors(shop: Shop):
    return FAQVector.objects.filter(
        entry__shop=shop, entry__published=True, model_name=embedding.model_name()
    )


def _all_vectors(shop: Shop) -> tuple[list[int], list[int], list[str], np.ndarray]:
    rows = list(
        _published_vectors(shop).order_by("id").values_list("id", "entry_id", "kind", "embedding")
    )
    if not rows:
        return [], [], [], np.zeros((0, 0), dtype=np.float32)
    vectors = np.array([row[3] for row in rows], dtype=np.float32)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], vectors
