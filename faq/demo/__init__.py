"""The demo shop the project ships: Petal & Stem, a small flower shop in Hamilton, New Jersey.

Loaded by `manage.py load_demo` (and `make run`), and copied by the tests and the benchmarks.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

DEMO_FILE = Path(__file__).resolve().parent / "demo_shop.json"
DEMO_SHOP_NAME = "Petal & Stem"


@cache
def demo_data() -> dict:
    return json.loads(DEMO_FILE.read_text())


def shop_fields() -> dict:
    """Keyword arguments for Shop(...) (a fresh dict each call)."""
    info = dict(demo_data()["shop"])
    info["suggestions"] = "\n".join(info["suggestions"])
    return info


def entry_fields() -> list[dict]:
    """Keyword arguments for each FAQEntry(...), shop aside."""
    return [
        {
            "question": faq["question"],
            "answer": faq["answer"],
            "alternatives": "\n".join(faq.get("alternatives", [])),
            "category": faq.get("category", ""),
        }
        for faq in demo_data()["faqs"]
    ]


def create_copy(**overrides):
    """A new shop with the demo FAQ, embedded right away in one batch (tests, benchmarks)."""
    from faq import indexing
    from faq.models import FAQEntry, Shop

    shop = Shop.objects.create(**{**shop_fields(), **overrides})
    # bulk_create sends no signals: the entries are embedded together just below.
    entries = FAQEntry.objects.bulk_create(FAQEntry(shop=shop, **f) for f in entry_fields())
    indexing.refresh([entry.pk for entry in entries])
    return shop
