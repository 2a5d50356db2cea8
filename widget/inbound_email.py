"""
Replies by email: the owner answers a customer request by replying to the email about it
(widget/handoff_email.py puts `Reply-To: reply+TOKEN@INBOUND_EMAIL_DOMAIN` on it). One code
path, `receive`, for both ways the mail arrives: `manage.py receive_email` (one message on
standard input, from an MTA's pipe) and `manage.py mail_gateway` (ShopBot's own SMTP listener).

What `receive` does with a message, in this order (each outcome is logged, and has the exit
status an MTA understands and the SMTP reply the gateway gives):

1. Larger than INBOUND_EMAIL_MAX_BYTES: refused (`read_limited` stops reading there).
2. Parsed with the standard `email` package; broken MIME or an undecodable body: refused as bad
   data (EX_DATAERR), with one clear log line.
3. An auto-reply or a bounce (Auto-Submitted, Precedence bulk/junk/list, X-Autoreply, a mailing
   list, an empty Return-Path, a delivery report): ignored, nobody told, so an out-of-office
   never loops.
4. No reply+TOKEN@INBOUND_EMAIL_DOMAIN among its recipients: unknown user (EX_NOUSER).
5. A token that is unknown (forged, mistyped), expired (the request is gone), of a closed
   request, or of a shop the sender is an owner of another shop's: nothing posted; the sender
   gets an email saying why (marked Auto-Submitted, so it is not answered automatically; at most
   INBOUND_EMAIL_NOTICES_PER_HOUR an hour per address, so a forged sender gets no backscatter).
6. The sender (From) is not one of the shop's owners nor its contact address: the message is
   held on the request's page for the owner (an InboundEmail row; the owners are emailed a
   link), never posted.
7. Otherwise the reply, without the quoted message and the signature (widget/reply_text.py), is
   the shop's answer through `handoff_email.answer`, the same function as the admin's reply:
   stored, pushed to the customer's open chats, emailed to the customer, the request answered.
   Attachments are dropped and the sender told. A redelivered message (same Message-ID) is
   posted once.

A database outage is EX_TEMPFAIL (the MTA tries again later); nothing else leaves a traceback.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import errors, policy
from email.message import EmailMessage as ParsedEmail
from email.parser import BytesParser
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q

from faq.models import Shop
from widget import handoff_email
from widget.models import Handoff, InboundEmail, ReplyRefused, SenderNotice
from widget.reply_text import html_to_text, strip_reply, unflow

logger = logging.getLogger(__name__)

# sysexits.h, what an MTA's pipe transport reads: 0 delivered, EX_DATAERR and EX_NOUSER bounce
# the message, EX_TEMPFAIL keeps it queued and tries again.
EX_OK, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 0, 65, 67, 75

# Outcome.result -> (exit status, SMTP reply).
RESULTS = {
    "posted": (EX_OK, "250 2.0.0 Posted to the customer's chat"),
    "held": (EX_OK, "250 2.0.0 Held for the shop's owner"),
    "duplicate": (EX_OK, "250 2.0.0 Already received"),
    "ignored": (EX_OK, "250 2.0.0 Ignored (automatic message)"),
    "refused": (EX_OK, "250 2.0.0 Not posted; the sender is told why"),
    "no_user": (EX_NOUSER, "550 5.1.1 No such reply address"),
    "bad_data": (EX_DATAERR, "554 5.6.0 Malformed message"),
    "too_large": (EX_DATAERR, "552 5.3.4 Message too big"),
    "try_later": (EX_TEMPFAIL, "451 4.3.0 Temporarily unavailable, try again later"),
}

# What the sender is told besides ReplyRefused's sentences.
NOT_POSTED = {
    "empty": "Your reply had no text of its own above the quoted message, so nothing was posted.",
    "too_long": f"Your reply is longer than {handoff_email.MAX_REPLY_CHARS} characters, so it "
    "was not posted. Shorten it, or answer in the admin.",
}

_MESSAGE_ID = re.compile(r"^<[^<>\s]{1,250}>$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Outcome:
    result: str  # one of RESULTS
    detail: str

    @property
    def exit_code(self) -> int:
        return RESULTS[self.result][0]

    @property
    def smtp_reply(self) -> str:
        return RESULTS[self.result][1]


class TooLarge(Exception):
    pass


class BadData(Exception):
    pass


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """All of `stream`, or TooLarge as soon as more than `limit` bytes have come."""
    chunks, size = [], 0
    while chunk := stream.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the message is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def reply_token(address: str) -> str:
    """The TOKEN of reply+TOKEN@INBOUND_EMAIL_DOMAIN; "" for any other address."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    domain_ok = settings.INBOUND_EMAIL_DOMAIN and domain.lower() == settings.INBOUND_EMAIL_DOMAIN
    if not domain_ok or not local.lower().startswith("reply+"):
        return ""
    return local[len("reply+") :]


def plain_address(value: str) -> str:
    """The one address in a header value or envelope address, lower-cased; "" unless it is a
    single plain address (no line break or other control character: never header material)."""
    pairs = email.utils.getaddresses([value])
    if len(pairs) != 1:
        return ""
    address = pairs[0][1].strip()
    if not address or _CONTROL.search(address) or any(c in address for c in ' "<>,;()[]\\'):
        return ""
    try:
        validate_email(address)
    except ValidationError:
        return ""
    return address.lower()


def automatic(message: ParsedEmail, envelope_sender: str | None) -> str:
    """Why the message is an automatic one (an auto-reply, a bounce, a list's), else ""."""
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "List-Id"):
        if header in message:
            return f"{header} header"
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return "empty envelope sender (a bounce)"
    if str(message.get("Return-Path", "x")).strip() in ("", "<>"):
        return "empty Return-Path (a bounce)"
    if message.get_content_type() == "multipart/report":
        return "a delivery report"
    local = plain_address(str(message.get("From", ""))).partition("@")[0]
    if local in ("mailer-daemon", "postmaster"):
        return f"from {local}"
    return ""


def _recipients(message: ParsedEmail) -> list[str]:
    """The message's recipients from its headers, when the caller has no envelope: the MTA's
    X-Original-To and Delivered-To first, then To and Cc."""
    values = []
    for header in ("X-Original-To", "Delivered-To", "To", "Cc"):
        values += [str(value) for value in message.get_all(header, [])]
    return [address for _, address in email.utils.getaddresses(values) if address]


def _text_part(part: ParsedEmail) -> str:
    text = part.get_content()
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    if part.get_param("format", "").lower() == "flowed":
        text = unflow(text, part.get_param("delsp", "").lower() == "yes")
    return strip_reply(text)


# The defects of the `email` package that mean the MIME structure itself is broken (missing or
# unclosed boundaries), as opposed to the small slips it repairs.
STRUCTURAL_DEFECTS = (
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
    errors.MissingHeaderBodySeparatorDefect,
)


def reply_of(message: ParsedEmail) -> tuple[str, list[str]]:
    """The new text of the reply (plain preferred, HTML turned to text) and the names of the
    attachments dropped. BadData for broken MIME or an undecodable body."""
    defects = [defect for part in message.walk() for defect in part.defects]
    structural = [d for d in defects if isinstance(d, STRUCTURAL_DEFECTS)]
    if structural:
        raise BadData(f"malformed MIME ({type(structural[0]).__name__})")
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        text = _text_part(body) if body is not None else ""
    except (LookupError, UnicodeError, ValueError, AssertionError) as exc:
        raise BadData(f"the body cannot be decoded ({type(exc).__name__}: {exc})") from None
    dropped = []
    for part in message.walk():
        if part.is_multipart() or part is body:
            continue
        inline_image = part.get("Content-ID") and not part.is_attachment()
        if part.is_attachment() or (part.get_content_maintype() != "text" and not inline_image):
            dropped.append(part.get_filename() or part.get_content_type())
    return text, dropped


def _shops_with_address(address: str):
    return Shop.objects.filter(Q(contact_email__iexact=address) | Q(owners__email__iexact=address))


def _send(to: list[str], subject: str, body: str, headers: dict[str, str]) -> None:
    """One automatic email (marked Auto-Submitted, so an out-of-office does not answer it);
    a failure is logged: what it reports has happened anyway."""
    mail = EmailMessage(
        subject=subject,
        body=f"{body}\n\n(This is an automatic message from ShopBot.)\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        headers=headers,
    )
    try:
        mail.connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
        mail.send(fail_silently=False)
    except Exception as exc:
        logger.warning("Could not email %s about an inbound email: %s", ", ".join(to), exc)


def tell_sender(to: str, message: ParsedEmail, sentence: str) -> None:
    """Answer the sender of `message` (never an automatic message's: the caller checked), at
    most INBOUND_EMAIL_NOTICES_PER_HOUR times an hour per address."""
    if not SenderNotice.allow(to):
        logger.warning("Not telling %s why: INBOUND_EMAIL_NOTICES_PER_HOUR reached", to)
        return
    subject = handoff_email.one_line(str(message.get("Subject", "")), 120)
    headers = {"Auto-Submitted": "auto-replied"}
    message_id = str(message.get("Message-ID", "")).strip()
    if _MESSAGE_ID.match(message_id):
        headers["In-Reply-To"] = headers["References"] = message_id
    subject = f"Re: {subject}" if subject else "Your reply to a customer request"
    _send([to], subject, sentence, headers)


def tell_owners_held(handoff: Handoff, held: InboundEmail) -> None:
    """Tell the shop's owners that a reply to their request is held for them."""
    recipients = handoff_email.owner_recipients(handoff)
    if not recipients:
        return
    body = (
        f"{held.sender} replied to the email about a customer's request, but is neither an owner "
        f"of {handoff.shop.name} nor its contact address, so nothing reached the customer. "
        f"Post the reply or dismiss it on the request's page:\n"
        f"{handoff_email.admin_link(handoff)}\n\nThe reply:\n\n{held.text}"
    )
    subject = f"[{handoff_email.one_line(handoff.shop.name, 40)}] A reply is held for you"
    _send(recipients, subject, body, {"Auto-Submitted": "auto-generated"})


def receive(raw: bytes, recipients: Sequence[str] = (), sender: str | None = None) -> Outcome:
    """Handle one inbound email (`raw`, RFC 5322 bytes). `recipients` and `sender` are the
    envelope's when the caller knows it (the gateway, or the MTA's pipe arguments); else the
    recipients come from the headers. Logs the outcome and returns it."""
    try:
        outcome = _receive(raw, recipients, sender)
    except (OperationalError, InterfaceError) as exc:
        outcome = Outcome("try_later", f"the database is unreachable ({exc})".strip())
    level = logging.INFO if outcome.exit_code == EX_OK else logging.WARNING
    logger.log(level, "Inbound email %s: %s", outcome.result, outcome.detail)
    return outcome


def _receive(raw: bytes, recipients: Sequence[str], sender: str | None) -> Outcome:
    limit = settings.INBOUND_EMAIL_MAX_BYTES
    if len(raw) > limit:
        return Outcome("too_large", f"the message is larger than {limit} bytes")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if not message.keys() or "From" not in message:
            raise BadData("no mail headers (no From:)")
        why_automatic = automatic(message, sender)
        from_address = plain_address(str(message["From"]))
        email_id = str(message.get("Message-ID", "")).strip()[:255]
        subject = handoff_email.one_line(str(message.get("Subject", "")), 200)
        tokens = [t for t in map(reply_token, recipients or _recipients(message)) if t]
    except BadData as exc:
        return Outcome("bad_data", str(exc))
    except Exception as exc:  # the email package's parse errors: never a traceback
        return Outcome("bad_data", f"unreadable headers ({type(exc).__name__}: {exc})")
    if why_automatic:
        return Outcome("ignored", f"{why_automatic}, from {from_address or '?'}")
    if not settings.INBOUND_EMAIL_DOMAIN:
        return Outcome("no_user", "replies by email are off (INBOUND_EMAIL_DOMAIN is unset)")
    if not tokens:
        return Outcome("no_user", f"no reply+TOKEN@{settings.INBOUND_EMAIL_DOMAIN} recipient")
    if not from_address:
        return Outcome("bad_data", "no usable From address")
    # Answers go to the envelope sender (RFC 3834), else to From.
    answer_to = (sender and plain_address(sender)) or from_address

    try:
        handoff = Handoff.objects.by_reply_token(tokens[0])
    except ReplyRefused as refused:
        tell_sender(answer_to, message, str(refused))
        return Outcome("refused", f"{refused.reason} token, from {from_address}")
    shop = handoff.shop
    is_shops = _shops_with_address(from_address)
    may_answer = is_shops.filter(pk=shop.pk).exists()
    if not may_answer and is_shops.exists():
        tell_sender(answer_to, message, ReplyRefused.REASONS["other_shop"])
        return Outcome("refused", f"request {handoff.pk} is another shop's, from {from_address}")

    try:
        text, dropped = reply_of(message)
    except BadData as exc:
        return Outcome("bad_data", f"{exc}, from {from_address}")
    if may_answer and (not text or len(text) > handoff_email.MAX_REPLY_CHARS):
        reason = "empty" if not text else "too_long"
        tell_sender(answer_to, message, NOT_POSTED[reason])
        return Outcome("refused", f"{reason} reply to request {handoff.pk}, from {from_address}")

    fields = {"sender": from_address, "subject": subject, "text": text}
    fields["dropped_attachments"] = dropped
    fields["status"] = InboundEmail.RECEIVED if may_answer else InboundEmail.HELD
    try:
        with transaction.atomic():
            row = InboundEmail.objects.create(handoff=handoff, email_id=email_id, **fields)
    except IntegrityError:  # the same Message-ID again: posted (or held) once
        row = InboundEmail.objects.get(handoff=handoff, email_id=email_id)
        if row.status != InboundEmail.RECEIVED:
            return Outcome("duplicate", f"{email_id} for request {handoff.pk} already received")
    if not may_answer:
        tell_owners_held(handoff, row)
        return Outcome("held", f"request {handoff.pk}: {from_address} is not an owner of the shop")

    posted, email_error = handoff_email.answer(handoff, text)
    row.status, row.posted = InboundEmail.POSTED, posted
    row.save(update_fields=["status", "posted"])
    if email_error:
        logger.warning("Reply to request %s posted, not emailed: %s", handoff.pk, email_error)
    if dropped:
        tell_sender(
            answer_to,
            message,
            "Your reply was posted to the customer's chat, but not its attachments "
            f"({', '.join(dropped)}): the chat carries text only. Send files from your own "
            "email to the customer instead.",
        )
    return Outcome("posted", f"request {handoff.pk}, message {posted.pk}, from {from_address}")
