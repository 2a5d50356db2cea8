"""
The `handoff` frame: the customer leaves a question and a way to reply, for a person of the shop
(docs/protocol.md, "Leaving a question for a person"). The hand-off's other parts: the model and
the take-over (widget/models.py: Handoff, Conversation.take_over / hand_back / say), its
sentences and frames (widget/chat/protocol.py: Invalid, handoff_saved_frame), its rate limits
(widget/chat/limits.py: check_handoff), the emails (widget/handoff_email.py), and the owner's
pages (owner/handoffs.py).

Everything the customer typed is checked here before it is stored: the address must be one
address (no second recipient, no line break that could start a new mail header), the name one
line, the question within the message limit. The request is saved first, with a job for the
worker that emails the owner, so a slow or broken mail server never holds up the chat.
"""

from __future__ import annotations

import re

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from faq.models import Shop
from widget import handoff_email
from widget.chat import limits
from widget.chat.protocol import ErrorCode, HandoffRequest, Invalid, Refused
from widget.models import Conversation, Handoff, Message

MAX_EMAIL, MAX_PHONE, MAX_NAME = 254, 40, 100
# Line breaks and other control characters (and Unicode's line separators) in a name or an
# address are how a header injection starts; nobody's real name or address holds one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What a phone number is written with: digits, spaces, + ( ) - . /
_PHONE = re.compile(r"^\+?[0-9 ()./-]+$")


def clean_email(value: str) -> str:
    if len(value) > MAX_EMAIL:
        raise Invalid("email", "email_too_long")
    # validate_email alone accepts quoted local parts; a plain address never needs quotes,
    # brackets or commas, and refusing them keeps the value a single, header-safe address.
    if _CONTROL.search(value) or any(c in value for c in ' "<>,;()[]\\'):
        raise Invalid("email", "email_single")
    try:
        validate_email(value)
    except ValidationError:
        raise Invalid("email", "email_wrong") from None
    # Saved, and later written to, as one normal form: the domain in lower case (the local
    # part may be case-sensitive, so it stays as typed).
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def clean_phone(value: str) -> str:
    digits = sum(c.isdigit() for c in value)
    if len(value) > MAX_PHONE or not _PHONE.match(value) or not 6 <= digits <= 20:
        raise Invalid("phone", "phone_wrong")
    return value


def clean_request(request: HandoffRequest, shop: Shop) -> dict:
    """The request's fields from a `handoff` frame, cleaned; raises Invalid (or Refused for a
    question over the length limit)."""
    email, phone, name, note = request.email, request.phone, request.name, request.note
    if phone and not shop.phone_callbacks:
        raise Invalid("phone", "email_only")
    if not email and not phone:
        raise Invalid("email", "email_or_phone" if shop.phone_callbacks else "email_needed")
    if email:
        email = clean_email(email)
    if phone:
        phone = clean_phone(phone)
    if len(name) > MAX_NAME:
        raise Invalid("name", "name_too_long", most=MAX_NAME)
    if _CONTROL.search(name):
        raise Invalid("name", "name_lines")
    if not note:
        raise Invalid("note", "note_missing")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(note) > limit:
        raise Refused(ErrorCode.TOO_LONG, "note_too_long", most=limit)
    return {"email": email, "phone": phone, "name": name, "note": note}


@database_sync_to_async
def save_request(
    conversation: Conversation, client_id: str, fields: dict, site: str = ""
) -> Handoff:
    """Store the request once per client id (a re-sent frame gets the stored one, and no second
    email), within the rate limits, with the job that emails the owner (the worker sends it)."""
    stored = Handoff.objects.filter(conversation=conversation, client_id=client_id).first()
    if stored is not None:
        return stored
    limits.check_handoff(conversation, fields["email"], fields["phone"])
    try:
        with transaction.atomic():
            handoff = Handoff.objects.create(
                conversation=conversation, client_id=client_id, **fields
            )
            # Committed with the request, or not at all: the worker sees both or neither.
            handoff_email.notify_owner_later(handoff.pk, site)
    except IntegrityError:  # the same id from another connection at the same moment
        return Handoff.objects.get(conversation=conversation, client_id=client_id)
    return handoff


@database_sync_to_async
def person_present(conversation: Conversation) -> bool:
    return Conversation.objects.filter(pk=conversation.pk, person_until__gt=timezone.now()).exists()


@database_sync_to_async
def hold_question(conversation: Conversation, ask_id: str, text: str) -> None:
    """Store the customer's question for the person who took the conversation over (a re-sent
    ask id is stored once); the bot does not answer it."""
    Message.objects.get_or_create(
        conversation=conversation, role=Message.USER, ask_id=ask_id, defaults={"text": text}
    )
