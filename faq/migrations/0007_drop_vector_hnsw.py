"""Drop the HNSW index on FAQ vectors: no query the product runs uses it. Search scans one shop's
rows exactly (a MATERIALIZED CTE filtered by shop, faq/retrieval.py), which an approximate
whole-table index cannot serve without missing entries, and maintaining it cost about a fifth of
import time. (Checked with EXPLAIN; `bench/bench_many_shops.py` prints the plan and the latency.)
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("faq", "0006_search_index"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="faqvector",
            name="faq_vector_hnsw",
        ),
    ]
