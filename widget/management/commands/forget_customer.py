"""Erase one customer's data when they ask (GDPR Art. 17): ConversationQuerySet.forget, which
the admin's "Forget these customers" action calls too. docs/privacy.md says what goes."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from widget.management import customer


class Command(BaseCommand):
    help = (
        "Erase a customer's data: their customer requests, the conversations they belong to "
        "(messages, feedback), and their words in customer wordings, FAQ phrasings made from "
        "them and unanswered questions. Prints what was erased, per kind."
    )

    def add_arguments(self, parser) -> None:
        customer.add_arguments(parser)
        parser.add_argument(
            "--dry-run", action="store_true", help="Only print what would be erased."
        )

    def handle(self, *args, address: str, shop: int | None, dry_run: bool, **options) -> None:
        erased = customer.conversations_of(address, shop).forget(dry_run=dry_run)
        where = f" in shop {shop}" if shop is not None else ""
        if not erased:
            self.stdout.write(f"Nothing stored for {address}{where}.")
            return
        self.stdout.write(f"{'Would erase' if dry_run else 'Erased'} for {address}{where}:")
        for kind, count in erased.items():
            self.stdout.write(f"  {kind}: {count}")
