"""One inbound email on standard input, as an MTA's pipe transport hands it over (a reply to a
customer request: widget/inbound_email.py). The exit status is what the MTA acts on."""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from widget import inbound_email


class Command(BaseCommand):
    help = (
        "Read one RFC 5322 email on standard input (Postfix's pipe transport, say) and post it "
        "as the shop's reply when it answers a customer request. Exit status: 0 accepted or "
        "ignored, 65 malformed or too large, 67 no such reply address, 75 try again later."
    )
    stealth_options = ("stdin",)
    requires_system_checks: list = []  # mail must not wait for checks

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--sender",
            help="The envelope sender (Postfix: --sender=${sender}); empty for a bounce.",
        )
        parser.add_argument(
            "--recipient",
            action="append",
            default=[],
            help="An envelope recipient (Postfix: --recipient=${original_recipient}); "
            "without it the recipients are read from the headers.",
        )

    def handle(self, *args, **options) -> None:
        stream = options.get("stdin") or sys.stdin.buffer
        try:
            raw = inbound_email.read_limited(stream, settings.INBOUND_EMAIL_MAX_BYTES)
        except inbound_email.TooLarge as exc:
            outcome = inbound_email.Outcome("too_large", str(exc))
            inbound_email.logger.warning("Inbound email too_large: %s", exc)
        else:
            outcome = inbound_email.receive(raw, options["recipient"], options["sender"])
        if outcome.exit_code:
            raise CommandError(f"{outcome.result}: {outcome.detail}", returncode=outcome.exit_code)
        self.stdout.write(f"{outcome.result}: {outcome.detail}")
