"""Catch up vectors that changes bypassing save() left stale: queryset.update, raw SQL, a new
EMBEDDING_MODEL."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from faq import indexing
from faq.management.shops import shop_or_error
from faq.models import FAQEntry


class Command(BaseCommand):
    help = (
        "Re-embed FAQ entries whose vectors are stale or missing (--all: every entry). "
        "Unchanged texts are never embedded again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--all", action="store_true", help="Refresh every entry")
        parser.add_argument("--shop", type=int, metavar="ID", help="Only this shop's entries")

    def handle(self, *args, all: bool, shop: int | None, **options) -> None:
        entries = FAQEntry.objects.all()
        if shop is not None:
            shop_or_error(shop)
            entries = entries.filter(shop_id=shop)
        total = entries.count()
        ids = (
            list(entries.values_list("pk", flat=True)) if all else indexing.stale_entry_ids(entries)
        )
        texts = 0
        # Chunks keep memory flat and show progress on a large FAQ; each is one model batch.
        for start in range(0, len(ids), 500):
            texts += indexing.refresh(ids[start : start + 500])
        self.stdout.write(
            f"Checked {total} entries: {len(ids)} refreshed ({texts} texts embedded), "
            f"{total - len(ids)} already fresh."
        )
