"""
The `handoff` frame: the customer leaves a question and a way to reply, for a person of the shop
(docs/protocol.md, "Leaving a question for a person").

Everything the customer typed is checked here before it is stored: the address must be one
address (no second recipient, no line break that could start a new mail header), the name one
line, the question within the message limit. The request is saved first; the owner's email goes
out afterwards on a thread (widget/notify.py), so a slow or broken mail server never holds up
the chat. Rate limits are counted in the database, so they hold across server processes.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from faq.models import Shop
from widget import notify
from widget.chat.protocol import ErrorCode, FrameType, HandoffRequest, Refused, error_frame
from widget.models import Conversation, Handoff, Message

logger = logging.getLogger(__name__)

MAX_EMAIL, MAX_PHONE, MAX_NAME = 254, 40, 100
# Line breaks and other control characters (and Unicode's line separators) in a name or an
# address are how a header injection starts; nobody's real name or address holds one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What a phone number is written with: digits, spaces, + ( ) - . /
_PHONE = re.compile(r"^\+?[0-9 ()./-]+$")


class Invalid(Refused):
    """The request is refused with its own (translated) sentence; for `invalid`, `field` names
    the field to fix."""

    def __init__(self, field: str | None, message: str, code: ErrorCode = ErrorCode.INVALID):
        Exception.__init__(self, message)
        self.code, self.ask_id, self.message, self.field = code, None, message, field

    def frame(self) -> dict:
        frame = error_frame(self.code, self.ask_id, self.message)
        return {**frame, "field": self.field} if self.field else frame


def clean_email(value: str) -> str:
    if len(value) > MAX_EMAIL:
        raise Invalid("email", _("That email address is too long."))
    # validate_email alone accepts quoted local parts; a plain address never needs quotes,
    # brackets or commas, and refusing them keeps the value a single, header-safe address.
    if _CONTROL.search(value) or any(c in value for c in ' "<>,;()[]\\'):
        raise Invalid("email", _("Please give a single email address, like name@example.com."))
    try:
        validate_email(value)
    except ValidationError:
        raise Invalid(
            "email", _("That email address does not look right; please check it.")
        ) from None
    return value


def clean_phone(value: str) -> str:
    digits = sum(c.isdigit() for c in value)
    if len(value) > MAX_PHONE or not _PHONE.match(value) or not 6 <= digits <= 20:
        raise Invalid("phone", _("Please give a phone number with its area code, digits only."))
    return value


def clean_request(request: HandoffRequest, shop: Shop) -> dict:
    """The request's fields from a `handoff` frame, cleaned; raises Invalid."""
    email, phone, name, note = request.email, request.phone, request.name, request.note
    if phone and not shop.phone_callbacks:
        raise Invalid("phone", _("This shop replies by email; please give your email address."))
    if not email and not phone:
        if shop.phone_callbacks:
            raise Invalid("email", _("Please give your email address or a phone number."))
        raise Invalid("email", _("Please give your email address so we can reply."))
    if email:
        email = clean_email(email)
    if phone:
        phone = clean_phone(phone)
    if len(name) > MAX_NAME:
        raise Invalid(
            "name", _("Please keep your name under %(most)s characters.") % {"most": MAX_NAME}
        )
    if _CONTROL.search(name):
        raise Invalid("name", _("Please write your name on one line."))
    if not note:
        raise Invalid("note", _("Please write your question."))
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(note) > limit:
        message = _("Please keep your question under %(most)s characters.") % {"most": limit}
        raise Invalid(None, message, ErrorCode.TOO_LONG)
    return {"email": email, "phone": phone, "name": name, "note": note}


def _check_rates(conversation: Conversation, fields: dict) -> None:
    hour_ago = timezone.now() - timedelta(hours=1)
    recent = Handoff.objects.filter(created__gte=hour_ago)
    per_conversation = settings.HANDOFFS_PER_CONVERSATION_PER_HOUR
    if per_conversation > 0 and (
        recent.filter(conversation=conversation).count() >= per_conversation
    ):
        raise Invalid(
            None,
            _("You have already left us several questions; we will reply to those first."),
            ErrorCode.RATE_LIMITED,
        )
    per_address = settings.HANDOFFS_PER_ADDRESS_PER_HOUR
    for field in ("email", "phone"):
        if per_address > 0 and fields[field]:
            shop_id = conversation.shop_id
            same = recent.filter(conversation__shop_id=shop_id, **{field: fields[field]})
            if same.count() >= per_address:
                raise Invalid(
                    None,
                    _("We already have several questions from that address; please wait an hour."),
                    ErrorCode.RATE_LIMITED,
                )


@database_sync_to_async
def save_request(
    conversation: Conversation, client_id: str, fields: dict, site: str = ""
) -> Handoff:
    """Store the request once per client id (a re-sent frame gets the stored one, and no second
    email), within the rate limits; then start the owner's email on its thread."""
    stored = Handoff.objects.filter(conversation=conversation, client_id=client_id).first()
    if stored is not None:
        return stored
    _check_rates(conversation, fields)
    try:
        with transaction.atomic():
            handoff = Handoff.objects.create(
                conversation=conversation, client_id=client_id, **fields
            )
    except IntegrityError:  # the same id from another connection at the same moment
        return Handoff.objects.get(conversation=conversation, client_id=client_id)
    # Only once the request is stored for good is anyone told about it.
    transaction.on_commit(lambda: notify.notify_owner_soon(handoff.pk, site))
    return handoff


def saved_frame(client_id: str, handoff: Handoff, shop: Shop) -> dict:
    """`handoff_saved`, with the sentence telling the customer what happens next."""
    # Server sentences go through Django's translation framework, like the chat's other texts.
    reply_time = shop.reply_time_text()
    values = {"email": handoff.email, "phone": handoff.phone, "when": reply_time}
    if handoff.email and reply_time:
        text = _("Thanks! A person from our team will reply to %(email)s, usually within %(when)s.")
    elif handoff.email:
        text = _("Thanks! A person from our team will reply to %(email)s.")
    elif reply_time:
        text = _(
            "Thanks! A person from our team will call you at %(phone)s, usually within %(when)s."
        )
    else:
        text = _("Thanks! A person from our team will call you at %(phone)s.")
    text = text % values
    if handoff.email:
        text += " " + _("The answer will also appear here in the chat.")
    return {
        "type": FrameType.HANDOFF_SAVED,
        "id": client_id,
        "handoff": handoff.pk,
        "email": handoff.email,
        "phone": handoff.phone,
        "reply_time": reply_time,
        "message": text,
    }


def push_shop_message(message: Message) -> None:
    """Send a `shop` message to the customer's open sockets of that conversation, in whichever
    server process they are (the channel layer's group; Redis with REDIS_URL). A customer with
    no socket open sees it in the history when they come back. Called from sync code (the
    admin), after the message is committed."""
    layer = get_channel_layer()
    event = {"type": "shop.message", "message": message.pk, "text": message.text}
    try:
        async_to_sync(layer.group_send)(message.conversation.group, event)
    except Exception:  # the reply is saved; the customer sees it on their next visit
        logger.warning("Could not push the shop's reply to the chat", exc_info=True)


# --- Live take-over -------------------------------------------------------------------------
# An owner takes the conversation over from the admin: the customer's widget shows that a person
# has joined, the customer's questions are stored for that person instead of answered by the bot,
# and the owner's messages reach the open chat at once. Handing back (or
# HANDOFF_TAKEOVER_IDLE_MINUTES without a message from the owner) lets the bot answer again.


def _send(conversation: Conversation, event: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(conversation.group, event)
    except Exception:
        logger.warning("Could not reach the conversation's open chats", exc_info=True)


def _person_until() -> timezone.datetime:
    return timezone.now() + timedelta(minutes=settings.HANDOFF_TAKEOVER_IDLE_MINUTES)


def take_over(conversation: Conversation) -> None:
    conversation.person_until = _person_until()
    conversation.save(update_fields=["person_until"])
    _send(conversation, {"type": "person.changed", "present": True})


def hand_back(conversation: Conversation) -> None:
    # Now rather than None: the conversation keeps the mark of a take-over (consumers.py).
    conversation.person_until = timezone.now()
    conversation.save(update_fields=["person_until"])
    _send(conversation, {"type": "person.changed", "present": False})


def say(conversation: Conversation, text: str) -> Message:
    """A live message from the shop: stored, pushed, and the take-over kept alive."""
    message = Message.objects.create(
        conversation=conversation,
        role=Message.SHOP,
        ask_id=f"shop-{uuid.uuid4().hex[:20]}",
        text=text,
    )
    if conversation.person_present:
        Conversation.objects.filter(pk=conversation.pk).update(person_until=_person_until())
    push_shop_message(message)
    return message


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
