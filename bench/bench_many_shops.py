"""
Search latency with many shops in one database, on the real model and the real PostgreSQL.

    .venv/bin/python bench/bench_many_shops.py [--shops 1000] [--entries 40] [--big 5000]
                                               [--searches 40]

1. Embeds a template of generated entries once (real model), then copies its entries and vectors
   inside PostgreSQL: `--shops` shops of `--entries` entries each, and one shop of `--big` entries
   (the template repeated with numbered questions). Each shop's search index is built as an edit
   would build it (faq/search_index.update_index).
2. Times `search()` (the query embedding, the exact per-shop scan, scoring, the entries) for the
   big shop and for one shop among the many: median and p95 over `--searches` questions, and the
   scan alone (EXPLAIN ANALYZE's execution time).
3. Prints the scan's plan for both, and whether any vector index serves it (none: migration
   faq.0007 dropped the HNSW index no query used).

Everything it creates is deleted at the end (in SQL: a cascade through Django's collector would
load every entry), even on error.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import devdb  # noqa: E402

devdb.setup()

from bench_reembed import generated_csv  # noqa: E402
from django.db import connection  # noqa: E402

from faq import embedding, importing, search, search_index  # noqa: E402
from faq.models import Shop  # noqa: E402
from lib.figures import percentile  # noqa: E402

QUESTIONS = [
    "how much does delivery cost for area 7",
    "can I change my gift cards order",
    "do you have parking near area 12",
    "what is your returns policy",
    "are you open on sundays",
    "do you offer student discounts in area 3",
    "can I pay by card",
    "wedding flowers price",
]


def copy_entries(template: Shop, shop_ids: list[int], limit: int, suffix: str = "") -> None:
    """Copy the template's first `limit` entries, `suffix` added to their questions, and their
    vectors into each shop, without the model."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO faq_faqentry
                (shop_id, question, answer, alternatives, category, published, created, updated)
            SELECT s.id, e.question || %s, e.answer, e.alternatives, e.category, true, now(), now()
            FROM (SELECT * FROM faq_faqentry WHERE shop_id = %s ORDER BY id LIMIT %s) AS e,
                 unnest(%s::bigint[]) AS s(id)
            """,
            [suffix, template.pk, limit, shop_ids],
        )
        cursor.execute(
            """
            INSERT INTO faq_faqvector
                (entry_id, shop_id, kind, text, text_hash, model_name, embedding, created)
            SELECT n.id, n.shop_id, v.kind, v.text, v.text_hash, v.model_name, v.embedding, now()
            FROM unnest(%s::bigint[]) AS s(id)
            JOIN faq_faqentry n ON n.shop_id = s.id
            JOIN faq_faqentry t ON t.shop_id = %s AND n.question = t.question || %s
            JOIN faq_faqvector v ON v.entry_id = t.id
            """,
            [shop_ids, template.pk, suffix],
        )


def delete_shops(shop_ids: list[int]) -> None:
    with connection.cursor() as cursor:
        shops = "(SELECT unnest(%s::bigint[]))"
        cursor.execute(
            "DELETE FROM faq_faqvector WHERE entry_id IN "
            f"(SELECT id FROM faq_faqentry WHERE shop_id IN {shops})",
            [shop_ids],
        )
        cursor.execute(f"DELETE FROM faq_faqentry WHERE shop_id IN {shops}", [shop_ids])
        cursor.execute(f"DELETE FROM faq_searchindex WHERE shop_id IN {shops}", [shop_ids])
        cursor.execute(f"DELETE FROM faq_shop WHERE id IN {shops}", [shop_ids])


def scan_plan(shop: Shop) -> tuple[list[str], float]:
    """EXPLAIN ANALYZE of search's nearest-vector scan: the plan's lines and its execution ms."""
    query = embedding.embed_one(QUESTIONS[0]).tolist()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            EXPLAIN (ANALYZE, COSTS OFF)
            WITH shop_vectors AS MATERIALIZED ({search._SHOP_VECTORS})
            SELECT entry_id, kind, similarity, COUNT(*) OVER (), SUM(id) OVER ()
            FROM shop_vectors ORDER BY similarity DESC LIMIT %(limit)s
            """,
            {
                "shop": shop.pk,
                "model": embedding.model_name(),
                "query": query,
                "limit": search.CANDIDATES,
            },
        )
        lines = [row[0] for row in cursor.fetchall()]
    execution = next(float(line.split()[2]) for line in lines if "Execution Time" in line)
    return lines, execution


def measure(shop: Shop, searches: int) -> dict:
    search_index.update_index(shop.pk)  # as the import or the edit would have
    search.search(shop, QUESTIONS[0])  # the first query's plan and connection
    timings = []
    for n in range(searches):
        started = time.perf_counter()
        search.search(shop, QUESTIONS[n % len(QUESTIONS)])
        timings.append((time.perf_counter() - started) * 1000)
    plan, _ = scan_plan(shop)
    scans = [scan_plan(shop)[1] for _ in range(5)]
    vectors = search_index.published_signature(shop.pk)[0]
    return {
        "vectors": vectors,
        "median": statistics.median(timings),
        "p95": percentile(timings, 95),
        "scan": statistics.median(scans),
        "plan": plan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shops", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=40)
    parser.add_argument("--big", type=int, default=5000)
    parser.add_argument("--searches", type=int, default=40)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    embedding.warm()
    template_size = max(args.entries, 250)
    created: list[int] = []
    try:
        template = Shop.objects.create(name=f"bench-many-{tag}-template", use_claude=False)
        created.append(template.pk)
        started = time.perf_counter()
        importing.import_file(template, generated_csv(template_size), "csv")
        print(
            f"Template: {template_size} entries, embedded in {time.perf_counter() - started:.0f} s"
        )

        started = time.perf_counter()
        many = Shop.objects.bulk_create(
            Shop(name=f"bench-many-{tag}-{n}", slug=f"bench-many-{tag}-{n}", use_claude=False)
            for n in range(args.shops)
        )
        created += [shop.pk for shop in many]
        copy_entries(template, [shop.pk for shop in many], args.entries)
        big = Shop.objects.create(
            name=f"bench-many-{tag}-big", slug=f"bench-many-{tag}-big", use_claude=False
        )
        created.append(big.pk)
        for copy, first in enumerate(range(0, args.big, template_size), start=1):
            suffix = f" (copy {copy})" if copy > 1 else ""
            copy_entries(template, [big.pk], min(template_size, args.big - first), suffix)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE faq_faqentry")
            cursor.execute("ANALYZE faq_faqvector")
            cursor.execute("SELECT count(*) FROM faq_faqvector")
            total_vectors = cursor.fetchone()[0]
        print(
            f"Database: {args.shops} shops x {args.entries} entries and one shop of {args.big} "
            f"entries, {total_vectors} vectors in all (copied in "
            f"{time.perf_counter() - started:.0f} s)"
        )

        one_of_many = many[len(many) // 2]
        results = {
            f"one shop of {args.big} entries": measure(big, args.searches),
            f"one shop of {args.entries} among {args.shops}": measure(one_of_many, args.searches),
        }
        print(f"search() over {args.searches} questions (embedding, scan, scoring, entries):")
        for label, r in results.items():
            print(
                f"  {label} ({r['vectors']} vectors): median {r['median']:.1f} ms, "
                f"p95 {r['p95']:.1f} ms; the scan alone (EXPLAIN ANALYZE) {r['scan']:.1f} ms"
            )
        for label, r in results.items():
            uses_vector_index = any("hnsw" in line or "ivfflat" in line for line in r["plan"])
            print(f"Plan of the scan, {label} (vector index used: {uses_vector_index}):")
            for line in r["plan"]:
                if "Execution" not in line and "Planning" not in line:
                    print("    " + re.sub(r"'\[[^']*\]'", "'[the query]'", line))
    finally:
        delete_shops(created)


if __name__ == "__main__":
    main()
