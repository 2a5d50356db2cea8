"""Email the owners about customer requests whose email has not gone out yet, and remind them of
requests still unanswered (run from cron)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from widget import handoff_email


class Command(BaseCommand):
    help = (
        "Try again to email shop owners about customer requests whose email failed (each waits "
        "its retry pause; at most HANDOFF_MAX_ATTEMPTS attempts, requests of the last 7 days), "
        "and send the one reminder about each request still unanswered HANDOFF_REMINDER_HOURS "
        "after it was left. Run it every few minutes from cron."
    )

    def handle(self, *args, **options) -> None:
        sent, failed = handoff_email.send_due()
        reminded, not_reminded = handoff_email.send_reminders()
        self.stdout.write(
            f"Sent {sent}, failed {failed}. Reminders sent {reminded}, failed {not_reminded}."
        )
