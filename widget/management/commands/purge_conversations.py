"""
Delete conversations (and their messages) older than the retention period, for privacy, and the
customer wordings ("did you mean" clicks) last seen before it that the owner has not accepted: an
accepted one is the owner's own phrasing now, part of the FAQ entry.

Run it daily from cron, e.g.
    15 3 * * *  cd /srv/shopbot && .venv/bin/python manage.py purge_conversations
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from widget.models import Conversation, CustomerWording, Message

# Deleted per transaction: short locks and bounded memory however big the backlog is.
BATCH = 500


class Command(BaseCommand):
    help = (
        "Delete conversations older than CONVERSATION_RETENTION_DAYS (or --days), with their "
        "messages. Prints how many were deleted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep this many days instead of CONVERSATION_RETENTION_DAYS.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )

    def handle(self, *args, days: int | None, dry_run: bool, **options) -> None:
        if days is None:
            days = settings.CONVERSATION_RETENTION_DAYS
            if days == 0:
                self.stdout.write(
                    "CONVERSATION_RETENTION_DAYS is 0: conversations are kept forever; "
                    "nothing deleted."
                )
                return
        if days < 1:
            raise CommandError(f"--days must be 1 or more, got {days}.")
        cutoff = timezone.now() - timedelta(days=days)
        old = Conversation.objects.filter(started__lt=cutoff)
        when = f"started before {cutoff:%Y-%m-%d %H:%M} {timezone.get_current_timezone_name()}"
        old_wordings = CustomerWording.objects.filter(last_seen__lt=cutoff).exclude(
            status=CustomerWording.ACCEPTED
        )
        if dry_run:
            conversations = old.count()
            messages = Message.objects.filter(conversation__in=old).count()
            self.stdout.write(
                f"Would delete {conversations} conversations ({messages} messages) {when}, "
                f"and {old_wordings.count()} customer wordings last seen before then."
            )
            return
        conversations = messages = 0
        while True:
            ids = list(old.values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            with transaction.atomic():
                _, per_model = Conversation.objects.filter(pk__in=ids).delete()
            conversations += per_model.get(Conversation._meta.label, 0)
            messages += per_model.get(Message._meta.label, 0)
        wordings, _ = old_wordings.delete()
        self.stdout.write(
            f"Deleted {conversations} conversations ({messages} messages) {when}, "
            f"and {wordings} customer wordings last seen before then."
        )
