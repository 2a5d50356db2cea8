"""
Delete conversations past their retention, for privacy: older than CONVERSATION_RETENTION_DAYS
(or --days), or than their shop's own shorter "keep conversations for" setting. Their messages
and customer requests go with them (ConversationQuerySet.expired and erase). So do the customer
wordings ("did you mean" clicks) last seen before then that the owner has not accepted: an
accepted one is the owner's own phrasing now, part of the FAQ entry.

Run it daily: docs/systemd/ has a timer for it (docs/privacy.md), or from cron, e.g.
    15 3 * * *  cd /srv/shopbot && .venv/bin/python manage.py purge_conversations
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from faq.models import Shop
from widget.models import Conversation, CustomerWording


class Command(BaseCommand):
    help = (
        "Delete conversations older than CONVERSATION_RETENTION_DAYS (or --days) or than their "
        "shop's own shorter retention, with their messages and customer requests. Prints how "
        "many were deleted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep this many days instead of CONVERSATION_RETENTION_DAYS (a shop's own "
            "shorter retention still applies).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

    def handle(self, *args, days: int | None, dry_run: bool, **options) -> None:
        if days is not None and days < 1:
            raise CommandError(f"--days must be 1 or more, got {days}.")
        days = settings.CONVERSATION_RETENTION_DAYS if days is None else days
        shorter = Shop.objects.filter(retention_days__isnull=False)
        if days:
            shorter = shorter.filter(retention_days__lt=days)
        own = dict(shorter.values_list("name", "retention_days"))
        if not days and not own:
            self.stdout.write(
                "CONVERSATION_RETENTION_DAYS is 0 and no shop sets its own retention: "
                "conversations are kept forever; nothing deleted."
            )
            return
        now = timezone.now()
        old = Conversation.objects.expired(days, now)
        old_wordings = CustomerWording.objects.expired(days, now)
        rules = [f"older than {days} days"] if days else []
        rules += [f"{d} days in {name}" for name, d in sorted(own.items())]
        local = f"{timezone.localtime(now):%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}"
        when = f"({', '.join(rules)}, at {local})"
        if dry_run:
            found = old.contents()
            self.stdout.write(
                f"Would delete {found['conversations']} conversations ({found['messages']} "
                f"messages, {found['customer requests']} customer requests) {when}, and "
                f"{old_wordings.count()} customer wordings not clicked within them."
            )
            return
        erased = old.erase()
        wordings, _ = old_wordings.delete()
        self.stdout.write(
            f"Deleted {erased['conversations']} conversations ({erased['messages']} messages, "
            f"{erased['customer requests']} customer requests) {when}, and {wordings} customer "
            f"wordings not clicked within them."
        )
