"""Export a shop's FAQ as CSV or JSON, in the format import_faqs reads back."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from faq import importing
from faq.models import Shop


class Command(BaseCommand):
    help = "Export a shop's FAQ entries as CSV or JSON (to standard output, or -o FILE)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop_id", type=int)
        parser.add_argument("--format", choices=importing.FORMATS, help="Default: from -o, or csv")
        parser.add_argument("-o", "--output", help="File to write (default: standard output)")

    def handle(self, *args, shop_id: int, format: str | None, output: str | None, **opts):
        try:
            shop = Shop.objects.get(pk=shop_id)
        except Shop.DoesNotExist:
            raise CommandError(f"There is no shop with id {shop_id}.") from None
        fmt = format or (importing.guess_format(output) if output else None) or "csv"
        text = importing.export(shop.entries.order_by("category", "question"), fmt)
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}.") from None
        self.stderr.write(f"Wrote {shop.entries.count()} entries of {shop.name!r} to {output}.")
