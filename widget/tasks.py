"""
The chat layer's background jobs (lib/jobs.py runs them on the worker): the owner's email about a
customer request, the owner's reply emailed to the customer, their retries, and the scheduled
ones: the due retries and reminders every five minutes, the retention purge every night.

`manage.py send_handoff_emails` and `manage.py purge_conversations` still do the scheduled work
by hand (or from cron, without a worker).
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.core.management import call_command

from lib.jobs import Retry, app
from widget import handoff_email
from widget.models import Handoff, Message

logger = logging.getLogger(__name__)


@app.task(
    name="widget.notify_owner",
    queue="email",
    retry=Retry(lambda: settings.HANDOFF_EMAIL_TRIES, handoff_email.retry_delay),
)
def notify_owner(handoff_id: int, site: str = "", force: bool = False) -> None:
    """Email the owners about the request; raises NotSent (the job is retried after its pause)
    while it is still unsent. Each attempt's outcome is on the request, for the admin. `force`
    (the admin's "email the owners again"): no waiting for a retry's pause."""
    if handoff_email.notify_owner(handoff_id, site, force=force):
        return
    unsent = Handoff.objects.filter(pk=handoff_id, notified__isnull=True).values_list(
        "notify_error", flat=True
    )
    for error in unsent:
        raise handoff_email.NotSent(error or "being sent by another process")


@app.task(
    name="widget.email_customer",
    queue="email",
    retry=Retry(lambda: settings.HANDOFF_EMAIL_TRIES, handoff_email.retry_delay),
)
def email_customer(handoff_id: int, message_id: int) -> None:
    """Email the owner's reply to the customer; raises NotSent (retried after its pause) while it
    is unsent. Each attempt's outcome is on the reply, for the request's page."""
    if handoff_email.email_customer(handoff_id, message_id):
        return
    error = Message.objects.filter(pk=message_id).values_list("email_error", flat=True).first()
    raise handoff_email.NotSent(error or "not sent")


@app.periodic(cron="*/5 * * * *")
@app.task(name="widget.send_due", queue="email", queueing_lock="widget.send_due")
def send_due(timestamp: int) -> None:
    """What `manage.py send_handoff_emails` does: the due retries, then the reminders."""
    sent, failed = handoff_email.send_due()
    reminded, not_reminded = handoff_email.send_reminders()
    if sent or failed or reminded or not_reminded:
        logger.info(
            "Owner emails sent %s, failed %s; reminders sent %s, failed %s",
            sent,
            failed,
            reminded,
            not_reminded,
        )


@app.periodic(cron="15 3 * * *")
@app.task(name="widget.purge_conversations", queueing_lock="widget.purge_conversations")
def purge_conversations(timestamp: int) -> None:
    """`manage.py purge_conversations`, every night at 03:15 UTC (procrastinate reads its
    schedules in UTC, whatever TIME_ZONE says)."""
    out = io.StringIO()
    call_command("purge_conversations", stdout=out)
    logger.info("%s", out.getvalue().strip())
