"""Import the questions and answers of a shop's existing FAQ page (see faq/webimport.py)."""

from __future__ import annotations

from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from faq import webimport
from faq.management.shops import shop_or_error


class Command(BaseCommand):
    help = (
        "Import the questions and answers found on a web page (an http(s) address, or a page "
        "saved as HTML) into a shop. Entries are matched by question and updated; their "
        "alternative phrasings and published flag are kept."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop_id", type=int)
        parser.add_argument("source", help="The FAQ page's address, or a saved .html file")
        parser.add_argument(
            "--dry-run", action="store_true", help="Only show what would be imported"
        )

    def handle(self, *args, shop_id: int, source: str, dry_run: bool, **options) -> None:
        shop = shop_or_error(shop_id)
        try:
            found = webimport.find_faqs(webimport.load(source))
        except webimport.PageImportError as exc:
            raise CommandError(str(exc)) from None
        candidates = webimport.compare(shop, found)
        if options["verbosity"] > 1 or dry_run:
            for c in candidates:
                category = f" [{c.found.category}]" if c.found.category else ""
                self.stdout.write(f"{c.status:>9}  {c.found.question}{category}")
        if dry_run:
            counts = Counter(c.status for c in candidates)
            self.stdout.write(
                f"Dry run, nothing imported into {shop.name!r}: {counts['new']} new, "
                f"{counts['update']} updated, {counts['unchanged']} unchanged."
            )
            return
        result = webimport.import_found(shop, found)
        self.stdout.write(
            f"Imported into {shop.name!r}: {result.created} new, {result.updated} updated, "
            f"{result.unchanged} unchanged."
        )
