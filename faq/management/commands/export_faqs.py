"""Export a shop's FAQ as CSV or JSON, in the format import_faqs reads back, or as HTML (the
published entries with schema.org JSON-LD, for the owner's own site)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from faq import faqpage, importing
from faq.management.shops import shop_or_error
from lib.output import write_output


class Command(BaseCommand):
    help = "Export a shop's FAQ entries as CSV, JSON or HTML (to standard output, or -o FILE)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop_id", type=int)
        parser.add_argument(
            "--format", choices=[*importing.FORMATS, "html"], help="Default: from -o, or csv"
        )
        parser.add_argument("-o", "--output", help="File to write (default: standard output)")

    def handle(self, *args, shop_id: int, format: str | None, output: str | None, **opts):
        shop = shop_or_error(shop_id)
        fmt = format or (self.guess_format(output) if output else None) or "csv"
        if fmt == "html":
            text = faqpage.export_html(shop.entries.all(), shop.name)
        else:
            text = importing.export(shop.entries.order_by("category", "question"), fmt)
        write_output(self, text, output)
        if output:
            entries = shop.entries.filter(published=True) if fmt == "html" else shop.entries
            self.stderr.write(f"Wrote {entries.count()} entries of {shop.name!r} to {output}.")

    @staticmethod
    def guess_format(filename: str) -> str | None:
        if filename.lower().endswith((".html", ".htm")):
            return "html"
        return importing.guess_format(filename)
