"""A customer's data as JSON, when they ask for a copy (GDPR Art. 15): their customer requests
and conversations with every message, in the shape docs/privacy.md documents."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from lib.output import write_output
from widget.management import customer


class Command(BaseCommand):
    help = (
        "Write a customer's data as JSON (to standard output, or -o FILE): their customer "
        "requests and the conversations they belong to, with the messages."
    )

    def add_arguments(self, parser) -> None:
        customer.add_arguments(parser)
        parser.add_argument("-o", "--output", help="File to write (default: standard output)")

    def handle(self, *args, address: str, shop: int | None, output: str | None, **opts) -> None:
        data = {
            "address": address.strip(),
            "shop": shop,
            "exported": timezone.now().isoformat(),
            **customer.conversations_of(address, shop).export(),
        }
        text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        write_output(self, text, output)
        if output:
            self.stderr.write(
                f"Wrote {len(data['requests'])} requests and {len(data['conversations'])} "
                f"conversations to {output}."
            )
