"""The demo shop the project ships: Petal & Stem, a small flower shop in Hamilton, New Jersey.

One builder, `build_shop`, makes every copy of it: the one `manage.py load_demo` (and `make run`)
loads through `load_shop`, the tests' (with vectors computed once per session) and the
benchmarks'. Its opening hours are data too (`add_hours`), matching its FAQ's hours entries.
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


def add_hours(shop) -> None:
    """The demo's opening hours (the file's "hours"): the week, and the holidays of the US-NJ
    calendar it closes on or opens other hours on. Every row is validated like an owner's."""
    from faq.models import HolidayRule, ShopHours, WeeklyRange

    data = demo_data()["hours"]
    hours = ShopHours(
        shop=shop,
        time_zone=data["time_zone"],
        holiday_country=data["holiday_country"],
        holiday_subdivision=data["holiday_subdivision"],
        public_holidays=data["public_holidays"],
        business_type=data["business_type"],
    )
    hours.full_clean()
    hours.save()
    days = [label for _, label in WeeklyRange.Weekday.choices]
    for item in data["week"]:
        for day in item["days"]:
            row = WeeklyRange(
                hours=hours, weekday=days.index(day), opens=item["opens"], closes=item["closes"]
            )
            row.full_clean()
            row.save()
    for item in data["holidays"]:
        rule = HolidayRule(hours=hours, **item)
        rule.full_clean()
        rule.save()


def build_shop(vectors: dict | None = None, **overrides):
    """A new shop with the demo FAQ, embedded right away in one batch.

    `vectors` (question -> [(model, kind, text, vector)], made once by the real models, model as
    in faq/embedding.py) are copied in instead of embedding again: the tests build many shops.
    Only the shop's models' are copied (`embedding.shop_models`); any of them missing is embedded.
    """
    from django.db import transaction

    from faq import embedding, indexing
    from faq.models import FAQEntry, FAQVector, Shop

    with transaction.atomic():
        shop = Shop.objects.create(**{**shop_fields(), **overrides})
        add_hours(shop)
        # bulk_create sends no signals: the entries are embedded (or their vectors copied) below.
        entries = FAQEntry.objects.bulk_create(FAQEntry(shop=shop, **f) for f in entry_fields())
        models = embedding.shop_models(shop.language)
        if vectors is not None:
            FAQVector.objects.bulk_create(
                FAQVector.of(entry, kind, text, embedding.model_name(model), vector)
                for entry in entries
                for model, kind, text, vector in vectors[entry.question]
                if model in models
            )
    given = {row[0] for rows in (vectors or {}).values() for row in rows}
    if not set(models) <= given:
        # After the commit: the model is the slow part and should hold no locks.
        indexing.refresh([entry.pk for entry in entries])
    return shop


def load_shop():
    """The demo shop `/` shows, built if missing: `(shop, created)`. Running it again changes
    nothing, and keeps an owner's edits."""
    from django.db import transaction

    from faq import indexing
    from faq.models import FAQEntry, Shop, ShopHours

    # Found by its marker, not its name: an owner may rename the demo, or call their own shop
    # "Petal & Stem".
    shop = Shop.objects.filter(is_demo=True).first()
    if shop is None:
        return build_shop(is_demo=True), True
    with indexing.batched(now=True), transaction.atomic():
        if not ShopHours.objects.filter(shop=shop).exists():
            add_hours(shop)  # a demo loaded before it had hours; an owner's hours are kept
        # Entries are matched by question, so a re-run neither duplicates them nor overwrites an
        # owner's edits to the demo's answers.
        existing = set(shop.entries.values_list("question", flat=True))
        for fields in entry_fields():
            if fields["question"] not in existing:
                FAQEntry.objects.create(shop=shop, **fields)
    return shop, False
