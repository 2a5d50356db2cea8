"""Import a shop's FAQ from CSV or JSON (see faq/importing.py for the formats)."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from faq import importing
from faq.management.shops import shop_or_error


class Command(BaseCommand):
    help = (
        "Import FAQ entries into a shop from a CSV or JSON file. Entries are matched by question "
        "and updated; if any row is bad, every bad row is listed and nothing is changed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("shop_id", type=int)
        parser.add_argument("file", help="A .csv or .json file, or - for standard input")
        parser.add_argument("--format", choices=importing.FORMATS, help="Default: from the name")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Also delete the shop's entries that are not in the file",
        )

    def handle(self, *args, shop_id: int, file: str, format: str | None, replace: bool, **opts):
        shop = shop_or_error(shop_id)
        fmt = format or importing.guess_format(file)
        if fmt is None:
            raise CommandError("Cannot tell the format from the file name; pass --format csv|json.")
        if file == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                data = Path(file).read_bytes()
            except OSError as exc:
                raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        try:
            result = importing.import_file(shop, data, fmt, replace=replace)
        except importing.ImportFailed as exc:
            for error in exc.errors:
                self.stderr.write(f"{file}: {error}")
            raise CommandError(
                f"Nothing was imported: {len(exc.errors)} problem(s) in {file}."
            ) from None
        self.stdout.write(f"Imported into {shop.name!r}: {result}.")
