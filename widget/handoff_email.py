"""
Emails about hand-offs (widget.models.Handoff), through Django's email framework (the
EMAIL_* settings; the console backend when EMAIL_HOST is unset).

- The owner is told of a new request: the shop's contact address and its owners get the question,
  the transcript and a link to the request in the admin. The request is saved with a job for the
  worker (`notify_owner_later`, widget/tasks.py), so the chat never waits on a mail server; the
  job is tried HANDOFF_EMAIL_TRIES times with a growing pause, and every attempt's outcome is kept
  on the request for the admin. The worker's job every five minutes (`send_due`, also
  `manage.py send_handoff_emails`) and the admin's action try again later.
  With INBOUND_EMAIL_DOMAIN set the email's Reply-To is the request's reply address: the owner
  answers by replying (widget/inbound_email.py).
- One reminder (`send_reminders`, from the same job and command) about a request still unanswered
  HANDOFF_REMINDER_HOURS after it was left, counted in the shop's opening hours once it has
  hours (`reminder_cutoff`).
- The owner's answer (`answer`: from the admin's reply form and from an email reply alike) is
  posted to the conversation, and its email to the customer (`email_customer`, with Reply-To the
  shop's address, in the language the customer chats in) is a job for the worker, tried
  HANDOFF_EMAIL_TRIES times like the owner's; its state is on the reply (Message.emailed,
  email_error), which the request's page shows: queued, sent, retrying or failed.

Only one sender works on a request at a time: an attempt first claims it by moving
`notify_after` forward in one UPDATE, so the worker, cron and the admin never send it twice. No
sender holds a database connection while it talks to the mail server (`release_connection`), nor
between tries (the job is rescheduled, not slept).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from faq.hours import schedule as sched
from faq.hours.models import shop_schedule
from faq.models import Shop
from lib import jobs
from lib.web import site_url
from widget.chat.texts import chat_language
from widget.models import Handoff, Message

logger = logging.getLogger(__name__)

TRANSCRIPT_MESSAGES = 40
# However few hours a shop opens, a request waits at most this long for its reminder
# (`send_reminders` looks at the last 7 days' requests).
LATEST_REMINDER = timedelta(days=6)
# The longest answer to a customer, from the admin's form or by email.
MAX_REPLY_CHARS = 4000
PHONE_ONLY = "The customer left a phone number, not an email address: call them back."
ROLE_NAMES = {Message.USER: "Customer", Message.BOT: "Bot", Message.SHOP: "You"}


def one_line(text: str, most: int = 70) -> str:
    """Text fit for a mail header: whitespace (line breaks included) collapsed, cut short."""
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1] + "…"


def owner_recipients(handoff: Handoff) -> list[str]:
    """The shop's contact address and its owners' addresses, each once."""
    shop = handoff.shop
    found = [shop.contact_email, *shop.owners.exclude(email="").values_list("email", flat=True)]
    seen, result = set(), []
    for address in found:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            result.append(address)
    return result


def admin_link(handoff: Handoff, site: str = "") -> str:
    path = reverse("admin:widget_handoff_change", args=[handoff.pk])
    return f"{site_url() or site.rstrip('/')}{path}"


def transcript(handoff: Handoff) -> str:
    """The conversation's last TRANSCRIPT_MESSAGES messages, saying so when earlier ones are left
    out, each bot answer with the "did you mean" entries it offered."""
    messages = handoff.conversation.messages
    recent = list(messages.order_by("-created", "-id")[:TRANSCRIPT_MESSAGES])
    earlier = messages.count() - len(recent)
    lines = []
    if earlier > 0:
        lines.append(
            f"({earlier} earlier message{'s' if earlier != 1 else ''} not shown: "
            "the whole conversation is on the request's page.)"
        )
    for message in reversed(recent):
        who = ROLE_NAMES.get(message.role, message.role)
        lines.append(f"{who} ({message.created:%Y-%m-%d %H:%M}): {message.text}")
        offered = [
            str(s["question"])
            for s in message.suggestions or []
            if isinstance(s, dict) and s.get("question")
        ]
        if offered:
            lines[-1] += "\n  Did you mean: " + " | ".join(offered)
    return "\n\n".join(lines) or "(No messages before the request.)"


def how_to_answer(handoff: Handoff, site: str = "") -> str:
    """The owner email's paragraph on answering: by replying (INBOUND_EMAIL_DOMAIN set), or in
    the admin."""
    delivered = "in the chat" + (" and by email" if handoff.email else "")
    link = admin_link(handoff, site)
    if handoff.reply_address:
        return (
            f"Reply to this email to answer: what you write above the quoted text reaches the "
            f"customer {delivered} (text only, no attachments). Or answer in the admin:\n{link}"
        )
    return f"Answer it in the admin, where the customer gets your reply {delivered}:\n{link}"


def email_to_owners(handoff: Handoff, recipients: list[str], about: str, body: str) -> EmailMessage:
    """An email to the shop's people about `handoff` (the new request, its reminder): the subject
    "[Shop] about: the question", Reply-To the request's reply address when replies by email are
    on."""
    return EmailMessage(
        subject=f"[{one_line(handoff.shop.name, 40)}] {about}: {one_line(handoff.note)}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        reply_to=[handoff.reply_address] if handoff.reply_address else None,
    )


def owner_email(handoff: Handoff, recipients: list[str], site: str = "") -> EmailMessage:
    shop = handoff.shop
    who = handoff.name or "A customer"
    if handoff.email:
        route = f"by email at {handoff.email}"
    else:
        route = f"with a phone call at {handoff.phone}"
    body = (
        f"{who} asked for a person in the chat of {shop.name} and would like an answer {route}.\n\n"
        f"Their question:\n\n{handoff.note}\n\n"
        f"{how_to_answer(handoff, site)}\n\n"
        f"The conversation so far:\n\n{transcript(handoff)}\n"
    )
    return email_to_owners(handoff, recipients, "Customer question", body)


def reminder_email(handoff: Handoff, recipients: list[str]) -> EmailMessage:
    shop = handoff.shop
    now = timezone.now()
    waited = f"{round((now - handoff.created).total_seconds() / 3600)} hour(s)"
    schedule = shop_schedule(shop.pk)
    if schedule is not None:
        open_hours = sched.open_time(schedule, handoff.created, now).total_seconds() / 3600
        waited += f", {round(open_hours)} of them while the shop was open,"
    body = (
        f"A customer's question to {shop.name} has waited {waited} for an answer:\n\n"
        f"{handoff.note}\n\n"
        f"They would like an answer "
        f"{f'by email at {handoff.email}' if handoff.email else f'by phone at {handoff.phone}'}."
        f"\n\n{how_to_answer(handoff)}\n\n"
        "This is the only reminder about this request.\n"
    )
    return email_to_owners(handoff, recipients, "Still waiting", body)


class NotSent(Exception):
    """The owner's email did not go out (the reason is on the request): the job tries again."""


def release_connection() -> None:
    """Close this thread's database connection before waiting on the mail server (unless a
    transaction needs it): a slow or unreachable server must not hold a PostgreSQL session."""
    if not connection.in_atomic_block:
        connection.close()


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: the base, then doubling."""
    return settings.HANDOFF_RETRY_SECONDS * 2 ** max(0, attempts - 1)


def _claim(handoff_id: int, force: bool) -> bool:
    now = timezone.now()
    lease = now + timedelta(seconds=3 * settings.EMAIL_TIMEOUT + 30)
    due = Handoff.objects.filter(pk=handoff_id, notified__isnull=True)
    if not force:
        due = due.filter(Q(notify_after__isnull=True) | Q(notify_after__lte=now))
    return due.update(notify_after=lease) == 1


def notify_owner(handoff_id: int, site: str = "", force: bool = False) -> bool:
    """One attempt to email the owner about the request; True once it is sent. Not yet due (a
    retry's pause), already sent, or being sent elsewhere: False without trying. `force` skips
    the pause (the admin's "try again")."""
    if not _claim(handoff_id, force):
        return False
    handoff = Handoff.objects.select_related("conversation__shop").get(pk=handoff_id)
    recipients = owner_recipients(handoff)
    error = ""
    if not recipients:
        error = "The shop has no contact email and no owner with an email address."
    else:
        message = owner_email(handoff, recipients, site)
        release_connection()
        try:
            message.connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
            message.send(fail_silently=False)
        except Exception as exc:  # any failure of the mail server is retried later
            error = f"{type(exc).__name__}: {exc}"[:500]
    attempts = handoff.notify_attempts + 1
    if error:
        logger.warning("Could not email the owner about request %s: %s", handoff_id, error)
        Handoff.objects.filter(pk=handoff_id).update(
            notify_attempts=F("notify_attempts") + 1,
            notify_error=error,
            notify_after=timezone.now() + timedelta(seconds=retry_delay(attempts)),
        )
        return False
    Handoff.objects.filter(pk=handoff_id).update(
        notified=timezone.now(),
        notify_attempts=F("notify_attempts") + 1,
        notify_error="",
        notify_after=None,
    )
    return True


def notify_owner_later(handoff_id: int, site: str = "", force: bool = False) -> None:
    """Queue the owner's email about this request (in the caller's transaction: the request and
    its job are committed together), for the worker (widget/tasks.py's `notify_owner`). `force`:
    the admin's "email the owners again", which skips the pause of a retry (`notify_owner`)."""
    kwargs = {"force": True} if force else {}
    # One waiting job per request: a second click while one waits adds nothing.
    lock = f"notify-owner-{handoff_id}"
    jobs.defer(
        "widget.notify_owner", queueing_lock=lock, handoff_id=handoff_id, site=site, **kwargs
    )


def notify_queued(handoff_id: int) -> bool:
    """Whether an email to the owners about this request is waiting for the worker (or being
    sent by it)."""
    return jobs.waiting("widget.notify_owner", handoff_id=handoff_id).exists()


def send_due() -> tuple[int, int]:
    """Every request still unsent whose pause is over and that has attempts left (the cron
    command). Returns (sent, failed)."""
    now = timezone.now()
    due = Handoff.objects.filter(
        notified__isnull=True,
        notify_attempts__lt=settings.HANDOFF_MAX_ATTEMPTS,
        created__gte=now - timedelta(days=7),
    ).filter(Q(notify_after__isnull=True) | Q(notify_after__lte=now))
    sent = failed = 0
    for handoff_id in due.values_list("pk", flat=True):
        if notify_owner(handoff_id):
            sent += 1
        else:
            failed += 1
    return sent, failed


def reminder_cutoff(shop: Shop, now: datetime) -> datetime:
    """A request of `shop` left before this moment and still open gets its reminder
    (`due_before` with the shop's hours)."""
    return due_before(shop_schedule(shop.pk), now, timedelta(hours=settings.HANDOFF_REMINDER_HOURS))


def due_before(schedule: sched.Schedule | None, now: datetime, wait: timedelta) -> datetime:
    """The cutoff of `reminder_cutoff`, a pure function: `wait` counted in the shop's opening
    hours back from `now` once it has hours (a request left on Friday at 5:30 PM, with 24 hours
    to wait, is reminded on Tuesday, not on Saturday evening while the shop is closed), plain
    hours without them; and never more than LATEST_REMINDER back, so a shop open a few hours a
    week still hears of a request before `send_reminders` stops looking at it."""
    latest = now - LATEST_REMINDER
    if schedule is None:
        return max(now - wait, latest)
    since = sched.open_since(schedule, now, wait)
    return latest if since is None else max(since, latest)


def send_reminders() -> tuple[int, int]:
    """One reminder to the owners about each request still open (never answered) past its
    shop's `reminder_cutoff`, whose first email went out; at most once per request (claimed in
    one UPDATE before sending, so cron runs and processes never send it twice; a failed send
    gives the claim back for the next run). Returns (sent, failed)."""
    if settings.HANDOFF_REMINDER_HOURS <= 0:
        return 0, 0
    now = timezone.now()
    waiting = Handoff.objects.filter(
        status=Handoff.OPEN,
        reminded__isnull=True,
        notified__isnull=False,
        created__gte=now - timedelta(days=7),
    )
    sent = failed = 0
    shops = Shop.objects.filter(pk__in=waiting.values("conversation__shop"))
    for shop in shops:
        due = waiting.filter(conversation__shop=shop, created__lt=reminder_cutoff(shop, now))
        for handoff_id in due.values_list("pk", flat=True):
            if not Handoff.objects.filter(pk=handoff_id, reminded__isnull=True).update(
                reminded=timezone.now()
            ):
                continue  # another run has it
            handoff = Handoff.objects.select_related("conversation__shop").get(pk=handoff_id)
            try:
                recipients = owner_recipients(handoff)
                if not recipients:
                    raise ValueError("the shop has no contact email and no owner with one")
                message = reminder_email(handoff, recipients)
                release_connection()
                message.connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
                message.send(fail_silently=False)
                sent += 1
            except Exception as exc:  # the mail server: the next run tries again
                logger.warning("Could not remind the owner of request %s: %s", handoff_id, exc)
                Handoff.objects.filter(pk=handoff_id).update(reminded=None)
                failed += 1
    return sent, failed


def answer(handoff: Handoff, text: str) -> tuple[Message, str]:
    """The owner's answer to a request, from the admin's reply form or an email reply: posted
    as a `shop` message of the conversation (Handoff.reply: stored, the request answered, pushed
    to the customer's open chats once committed), and its email to the customer queued for the
    worker in the same transaction (`email_customer_later`). Returns the message and "" when the
    email is queued, else why there is none (the reply is in the chat either way)."""
    with transaction.atomic():
        message = handoff.reply(text)
        if not handoff.email:
            return message, PHONE_ONLY
        email_customer_later(handoff, message)
    return message, ""


def email_customer_later(handoff: Handoff, reply: Message) -> None:
    """Queue the email of the owner's reply to the customer (widget/tasks.py's
    `email_customer`), in the caller's transaction; the reply's email state starts afresh."""
    Message.objects.filter(pk=reply.pk).update(email_queued=timezone.now(), email_error="")
    lock = f"email-customer-{reply.pk}"  # one waiting job per reply
    jobs.defer(
        "widget.email_customer", queueing_lock=lock, handoff_id=handoff.pk, message_id=reply.pk
    )


def reply_email_state(reply: Message) -> str:
    """What the owner reads about a reply's email: QUEUED, SENT, RETRYING or FAILED ("" for a
    message that was never to be emailed)."""
    if reply.emailed:
        return SENT
    if reply.email_queued is None:
        return ""
    if not reply.email_error:
        return QUEUED
    if jobs.waiting("widget.email_customer", message_id=reply.pk).exists():
        return RETRYING
    return FAILED


QUEUED, SENT, RETRYING, FAILED = "queued", "sent", "retrying", "failed"


def email_customer(handoff_id: int, message_id: int) -> bool:
    """One attempt to email the owner's reply (`message_id`) to the request's customer; True
    once it is sent (or was already, or the conversation was erased meanwhile). A failure is
    kept on the message (`email_error`, `email_attempts`) for the owner's page, and returns
    False: the job tries again."""
    reply = Message.objects.filter(pk=message_id, role=Message.SHOP).first()
    handoff = (
        Handoff.objects.select_related("conversation__shop")
        .filter(pk=handoff_id, conversation_id=getattr(reply, "conversation_id", None))
        .first()
    )
    if reply is None or handoff is None or reply.emailed:
        return True  # sent already, or erased since (the customer asked to be forgotten)
    message = customer_email(handoff, reply)
    release_connection()
    error = ""
    try:
        message.connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
        message.send(fail_silently=False)
    except Exception as exc:  # any failure of the mail server is retried
        error = f"{type(exc).__name__}: {exc}"[:500]
    if error:
        logger.warning("Could not email the reply to request %s: %s", handoff_id, error)
        Message.objects.filter(pk=message_id).update(
            email_attempts=F("email_attempts") + 1, email_error=error
        )
        return False
    Message.objects.filter(pk=message_id).update(
        emailed=timezone.now(), email_attempts=F("email_attempts") + 1, email_error=""
    )
    return True


def customer_email(handoff: Handoff, reply: Message) -> EmailMessage:
    """The email of the owner's reply to the customer, in the chat's language (the
    conversation's, else the shop's), Reply-To the shop's address.

    It goes only to the address saved with this request (checked and normalised by
    widget/chat/handoff.py), and carries only the owner's words: anyone can type someone else's
    address into the chat, so the customer's own note is not quoted, or the shop's mail would
    carry a stranger's text to that address."""
    shop = handoff.shop
    with translation.override(chat_language(handoff.conversation.language, shop.language)):
        subject = _("%(shop)s: a reply to your question") % {"shop": one_line(shop.name, 60)}
        also = _("You can also read this reply in the chat on our website.")
    return EmailMessage(
        subject=subject,
        body=f"{reply.text}\n\n---\n{also}",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[handoff.email],
        reply_to=[shop.contact_email] if shop.contact_email else None,
    )
