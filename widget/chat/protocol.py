"""
The chat protocol's vocabulary and the decoding of what a client sends (docs/protocol.md is the
contract; the names below are the ones it uses).

- `Close`: the close codes, `ErrorCode`: the `code` of an `error` frame, `FrameType`: every
  frame's `type` (`SERVER_FRAMES`: the ones the server sends).
- `SENTENCES`: every sentence an error frame can carry, in this one dict, translated (locale/);
  `Refused` and `Invalid` (a hand-off field) are the refusals that carry them.
- Every frame the server sends is built here, one function per type (`ready_frame`,
  `delta_frame`, `answer_frame`, `error_frame`, `pong_frame`, `feedback_saved_frame`,
  `handoff_saved_frame`, `shop_message_frame`, `person_frame`, `received_frame`,
  `hours_frame`).
- `read_frame` turns one websocket frame into an `Ask`, a `Feedback`, a `Ping`, a
  `HandoffRequest` or an `HoursRequest`, or raises `Refused` (which knows its error frame): the
  size is checked before parsing, nesting is bounded, strings are cleaned of what PostgreSQL or
  UTF-8 cannot store, fields are checked for type.
- `Handshake.of(scope)`: what a connecting client tells (shop key, Origin, page, conversation id,
  language, user agent), cleaned, and this ShopBot site's own origin as far as the connection can
  vouch for it.

Limits (how much and how fast) are widget/chat/limits.py's; this module only says what a
well-formed frame is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from faq.hours import questions as hours_questions
from faq.hours.schedule import Schedule
from faq.models import Shop, normalise_origin
from faq.text import clean_text
from lib.internals import is_unsaved
from lib.web import site_url
from widget.chat.texts import direction, widget_texts
from widget.models import Conversation, Handoff, Message


class Close(IntEnum):
    """Close codes; 4xxx are ours (a server may send only 1000 or 3000-4999: daphne's websocket
    library refuses any other, so RFC 6455's 1013 and 1008 are 4013 and 4008 here). The widget
    stops reconnecting on 4403 and 4404 and waits long on 4429, 4008 and 4013."""

    TRY_AGAIN_LATER = 4013  # 1013 "try again later", in our own 4xxx range: the database is down
    TOO_MANY_FRAMES = 4008  # 1008 "policy violation", in our own 4xxx range
    FORBIDDEN_ORIGIN = 4403
    UNKNOWN_SHOP = 4404
    TOO_MANY_CONNECTIONS = 4429


class ErrorCode(StrEnum):
    """The `code` of an `error` frame; the connection stays open after each."""

    BAD_REQUEST = "bad_request"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    CONVERSATION_FULL = "conversation_full"
    UNKNOWN_ENTRY = "unknown_entry"
    UNAVAILABLE = "unavailable"
    INVALID = "invalid"  # a handoff field; the frame names it in `field`


class FrameType(StrEnum):
    """Every frame's `type`; docs/protocol.md describes each, and widget.js has a handler for
    each the server sends (tests/test_protocol_frames.py checks both)."""

    # client -> server
    ASK = "ask"
    FEEDBACK = "feedback"
    PING = "ping"
    HANDOFF = "handoff"
    GET_HOURS = "get_hours"  # the widget asks for the shop's status again at `next_change`
    # server -> client
    READY = "ready"
    DELTA = "delta"
    ANSWER = "answer"
    ERROR = "error"
    PONG = "pong"
    FEEDBACK_SAVED = "feedback_saved"
    HANDOFF_SAVED = "handoff_saved"
    SHOP_MESSAGE = "shop_message"  # a person of the shop wrote
    PERSON = "person"  # a person of the shop joined (present) or left the conversation
    RECEIVED = "received"  # an ask stored for that person instead of answered
    HOURS = "hours"  # the shop's open / closed status, the answer to `get_hours`


SERVER_FRAMES = frozenset(
    {
        FrameType.READY,
        FrameType.DELTA,
        FrameType.ANSWER,
        FrameType.ERROR,
        FrameType.PONG,
        FrameType.FEEDBACK_SAVED,
        FrameType.HANDOFF_SAVED,
        FrameType.SHOP_MESSAGE,
        FrameType.PERSON,
        FrameType.RECEIVED,
        FrameType.HOURS,
    }
)


# Every sentence an error frame can carry, in the chat's language (the consumer activates it; the
# translations are in locale/). An error code's own key is its general sentence; `{…}` (and, in
# the hand-off's sentences, whose translations use it, `%(…)s`) are filled in after translation.
SENTENCES: dict[str, Promise] = {
    # bad_request
    "bad_request": _("That message could not be understood."),
    "binary": _("Send JSON text frames, not binary ones."),
    "not_json": _("That message is not valid JSON."),
    "too_deep": _("That message is nested too deeply."),
    "not_object": _("Each message must be a JSON object."),
    "unknown_type": _("Unknown message type; expected ask, feedback, handoff or ping."),
    "ask_id": _("An ask needs an id: a string of 1 to 64 characters."),
    "ask_text": _("An ask needs some text."),
    "ask_entry": _("An ask's entry must be the id of a suggested entry."),
    "feedback_message": _("Feedback needs the answer's message id."),
    "feedback_value": _('Feedback must be "up" or "down".'),
    "feedback_elsewhere": _("That answer is not part of this conversation."),
    "handoff_id": _("A handoff needs an id: a string of 1 to 64 characters."),
    "handoff_field": _("A handoff's email, phone, name and note must be strings."),
    # too_long
    "too_long": _("Please keep your message under {limit} characters."),
    "frame_too_large": _("That message is too large; please keep it under {limit} characters."),
    # rate_limited
    "pending_asks": _("Please wait for the answers to your earlier questions."),
    "connection_rate": _("You are sending messages very fast; please wait a minute."),
    "address_rate": _("Too many messages from your network right now; please wait a minute."),
    "address_connections": _("Too many chats are open from your network; close one first."),
    # conversation_full
    "conversation_full": _(
        "This conversation has reached its length limit. Please start a new "
        "conversation, or contact us."
    ),
    "conversation_full_contact": _(
        "This conversation has reached its length limit. Please start a new "
        "conversation, or contact us ({route})."
    ),
    # unknown_entry, unavailable
    "unknown_entry": _("Sorry, that answer is no longer available. Please ask in your own words."),
    "unavailable": _("Sorry, the chat is having trouble right now. Please try again in a moment."),
    # invalid (a `handoff` frame refused): a field, which Invalid names
    "email_too_long": _("That email address is too long."),
    "email_single": _("Please give a single email address, like name@example.com."),
    "email_wrong": _("That email address does not look right; please check it."),
    "email_only": _("This shop replies by email; please give your email address."),
    "email_or_phone": _("Please give your email address or a phone number."),
    "email_needed": _("Please give your email address so we can reply."),
    "phone_wrong": _("Please give a phone number with its area code, digits only."),
    "name_too_long": _("Please keep your name under %(most)s characters."),
    "name_lines": _("Please write your name on one line."),
    "note_missing": _("Please write your question."),
    # too_long, rate_limited
    "note_too_long": _("Please keep your question under %(most)s characters."),
    "handoffs_conversation": _(
        "You have already left us several questions; we will reply to those first."
    ),
    "handoffs_address": _(
        "We already have several questions from that address; please wait an hour."
    ),
}


def sentence(key: str, **params) -> str:
    """The sentence in the active language, its `{…}` (or `%(…)s`) filled in."""
    text = str(SENTENCES[key])
    if not params:
        return text
    return text % params if "%(" in text else text.format(**params)


class Refused(Exception):
    """A frame or ask refused: `code` and `message` go into the error frame, with `ask_id` when
    the ask's id could be read. `key` names the sentence in SENTENCES (default: the code's)."""

    def __init__(
        self, code: ErrorCode, key: str | None = None, ask_id: str | None = None, **params
    ) -> None:
        self.code, self.ask_id = code, ask_id
        self.message = sentence(key or code.value, **params)
        super().__init__(self.message)

    def frame(self) -> dict:
        return error_frame(self.code, self.ask_id, self.message)


class Invalid(Refused):
    """A `handoff` frame's field is unusable: an `invalid` error naming the `field` to fix, `key`
    the sentence saying how."""

    def __init__(self, field: str, key: str, **params) -> None:
        super().__init__(ErrorCode.INVALID, key, **params)
        self.field = field

    def frame(self) -> dict:
        return {**super().frame(), "field": self.field}


class Closing(Exception):
    """The connection is refused: close it with `code`, after `error`'s frame if there is one."""

    def __init__(self, code: Close, error: Refused | None = None) -> None:
        super().__init__(code)
        self.code, self.error = code, error


# --- Decoding ---------------------------------------------------------------------------------


def _clean(content, max_depth: int):
    """`content` with every string cleaned; Refused if nested deeper than max_depth.
    Iterative, so a hostile document cannot exhaust the stack."""
    if isinstance(content, str):
        return clean_text(content)
    if not isinstance(content, dict | list):
        return content
    root = {"": content}
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise Refused(ErrorCode.BAD_REQUEST, "too_deep")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        replacements = []
        for key, value in items:
            new_key = clean_text(key) if isinstance(key, str) else key
            if isinstance(value, str):
                value = clean_text(value)
            elif isinstance(value, dict | list):
                stack.append((value, depth + 1))
            replacements.append((key, new_key, value))
        if isinstance(node, dict):
            node.clear()
            node.update((new_key, value) for _, new_key, value in replacements)
        else:
            for index, _, value in replacements:
                node[index] = value
    return root[""]


def decode_frame(text_data: str) -> object:
    """Parse one text frame, or raise Refused. The size check comes before any parsing, so a
    multi-megabyte frame costs a len() and nothing more."""
    if len(text_data) > settings.CHAT_MAX_FRAME_CHARS:
        raise Refused(ErrorCode.TOO_LONG, "frame_too_large", limit=settings.CHAT_MAX_MESSAGE_CHARS)
    try:
        content = json.loads(text_data)
    except RecursionError:
        raise Refused(ErrorCode.BAD_REQUEST, "too_deep") from None
    except ValueError:
        raise Refused(ErrorCode.BAD_REQUEST, "not_json") from None
    return _clean(content, settings.CHAT_MAX_JSON_DEPTH)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Ask:
    """A question; `entry` when it is a click on a "did you mean" suggestion."""

    id: str
    text: str
    entry: int | None = None

    @classmethod
    def parse(cls, content: dict) -> Ask:
        ask_id, text, entry = content.get("id"), content.get("text"), content.get("entry")
        if not isinstance(ask_id, str) or not 1 <= len(ask_id) <= 64:
            raise Refused(ErrorCode.BAD_REQUEST, "ask_id")
        if not isinstance(text, str) or not text.strip():
            raise Refused(ErrorCode.BAD_REQUEST, "ask_text", ask_id)
        if entry is not None and not _is_int(entry):
            raise Refused(ErrorCode.BAD_REQUEST, "ask_entry", ask_id)
        return cls(ask_id, text, entry)


@dataclass(frozen=True)
class Feedback:
    """A thumb on an answer: `message` is the answer's id, `value` "up" or "down"."""

    message: int
    value: str

    @classmethod
    def parse(cls, content: dict) -> Feedback:
        message, value = content.get("message"), content.get("value")
        if not _is_int(message):
            raise Refused(ErrorCode.BAD_REQUEST, "feedback_message")
        if value not in (Message.UP, Message.DOWN):
            raise Refused(ErrorCode.BAD_REQUEST, "feedback_value")
        return cls(message, value)


@dataclass(frozen=True)
class Ping:
    @classmethod
    def parse(cls, content: dict) -> Ping:
        return cls()


@dataclass(frozen=True)
class HandoffRequest:
    """The customer leaves a question for a person: the client's `id` and the fields as typed
    (checked for content by widget/chat/handoff.py)."""

    id: str
    email: str = ""
    phone: str = ""
    name: str = ""
    note: str = ""

    @classmethod
    def parse(cls, content: dict) -> HandoffRequest:
        client_id = content.get("id")
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            raise Refused(ErrorCode.BAD_REQUEST, "handoff_id")
        fields = {}
        for name in ("email", "phone", "name", "note"):
            value = content.get(name)
            if value is not None and not isinstance(value, str):
                raise Refused(ErrorCode.BAD_REQUEST, "handoff_field", client_id)
            fields[name] = (value or "").strip()
        return cls(client_id, **fields)


@dataclass(frozen=True)
class HoursRequest:
    """The widget asks for the shop's open / closed status again (at the `next_change` it was
    told)."""

    @classmethod
    def parse(cls, content: dict) -> HoursRequest:
        return cls()


Frame = Ask | Feedback | Ping | HandoffRequest | HoursRequest
CLIENT_FRAMES: dict[str, type[Frame]] = {
    FrameType.ASK: Ask,
    FrameType.FEEDBACK: Feedback,
    FrameType.PING: Ping,
    FrameType.HANDOFF: HandoffRequest,
    FrameType.GET_HOURS: HoursRequest,
}


def read_frame(text_data: str | None) -> Frame:
    """One websocket frame (None: a binary one) as a client frame, or Refused."""
    if text_data is None:
        raise Refused(ErrorCode.BAD_REQUEST, "binary")
    content = decode_frame(text_data)
    if not isinstance(content, dict):
        raise Refused(ErrorCode.BAD_REQUEST, "not_object")
    kind = content.get("type")
    frame = CLIENT_FRAMES.get(kind) if isinstance(kind, str) else None  # a list is unhashable
    if frame is None:
        raise Refused(ErrorCode.BAD_REQUEST, "unknown_type")
    return frame.parse(content)


# --- Frames the server sends -------------------------------------------------------------------
# `shop` is the conversation's, passed in so that no query runs from async code; `site` is this
# ShopBot site's origin for the sources' links ("" makes them paths), worked out when sent, so a
# change of where the FAQ lives applies to earlier answers too.


def hours_status(schedule: Schedule | None, language: str) -> dict | None:
    """The shop's status now, {"open", "next_change", "text"} in `language`, or None when the
    shop has no hours (`ready`'s and the `hours` frame's "hours")."""
    if schedule is None:
        return None
    return hours_questions.status_line(schedule, timezone.now(), language)


def reply_promise(schedule: Schedule | None, language: str) -> str | None:
    """While the shop is closed, when a person will reply ("We're closed now; we'll reply after
    we open on Monday at 9:00 AM."); None when it is open or has no hours."""
    if schedule is None:
        return None
    return hours_questions.reply_promise(schedule, timezone.now(), language)


def ready_frame(
    conversation: Conversation,
    shop: Shop,
    language: str,
    history: list[Message],
    site: str,
    schedule: Schedule | None = None,
) -> dict:
    """`ready`: the conversation, the shop's chat settings, the widget's texts in `language`,
    the history (oldest first), whether a person of the shop has it taken over, and the shop's
    open / closed status when it has hours (`schedule`)."""
    handoff = {"phone": shop.phone_callbacks, "reply_time": shop.reply_time_text()}
    # Closed now: the form says when a person will reply, instead of the usual reply time.
    handoff["closed"] = reply_promise(schedule, language)
    return {
        "type": FrameType.READY,
        "conversation": str(conversation.pk),
        "resumed": not is_unsaved(conversation),
        "bot": {
            "name": shop.bot_name_text(),
            "greeting": shop.greeting_text(),
            "suggestions": shop.suggestion_list,
            "accent": shop.accent_color,
            "position": shop.position,
            # What the "Talk to a person" form asks for (docs/protocol.md, `handoff`).
            "handoff": handoff,
            # The shop's privacy notice, shown before the first message: {text, url} or None.
            "privacy": shop.privacy_notice_frame(),
        },
        "language": language,
        "dir": direction(language),
        "texts": widget_texts(language),
        "history": [history_item(message, shop, site) for message in history],
        # A person of the shop has taken this conversation over (live take-over).
        "person": not is_unsaved(conversation) and conversation.person_present,
        "hours": hours_status(schedule, language),
    }


def hours_frame(schedule: Schedule | None, language: str) -> dict:
    """`hours`: the shop's status now (the answer to the widget's `hours` frame)."""
    return {"type": FrameType.HOURS, "hours": hours_status(schedule, language)}


def history_item(message: Message, shop: Shop, site: str) -> dict:
    """An item of the `ready` frame's history."""
    if message.role == Message.USER:
        return {"role": "user", "id": message.ask_id, "text": message.text}
    if message.role == Message.SHOP:  # a person of the shop (a hand-off's reply, a take-over)
        return {"role": "shop", "id": message.ask_id, "text": message.text, "message": message.pk}
    return {
        "role": "bot",
        "id": message.ask_id,
        "text": message.text,
        "message": message.pk,
        "sources": shop.with_urls(message.sources, site),
        "mode": message.mode,
        "suggestions": message.suggestions,
        "feedback": message.feedback or None,
    }


def delta_frame(ask_id: str, text: str) -> dict:
    return {"type": FrameType.DELTA, "id": ask_id, "text": text}


def answer_frame(message: Message, shop: Shop, site: str) -> dict:
    """The `answer` frame of a bot message, with the shop's contact route."""
    return {
        "type": FrameType.ANSWER,
        "id": message.ask_id,
        "message": message.pk,
        "text": message.text,
        "sources": shop.with_urls(message.sources, site),
        "mode": message.mode,
        "suggestions": message.suggestions,
        "contact": shop.contact(),
    }


def error_frame(code: ErrorCode, ask_id: str | None = None, message: str = "") -> dict:
    return {
        "type": FrameType.ERROR,
        "id": ask_id,
        "code": code,
        "message": message or sentence(code.value),
    }


def pong_frame() -> dict:
    return {"type": FrameType.PONG}


def feedback_saved_frame(message_id: int) -> dict:
    return {"type": FrameType.FEEDBACK_SAVED, "message": message_id}


def handoff_saved_frame(
    client_id: str, handoff: Handoff, reply_time: str, promise: str | None = None
) -> dict:
    """`handoff_saved`, with the sentence telling the customer what happens next (`reply_time`
    is the shop's usual reply time; `promise`, while the shop is closed, when it will reply,
    `reply_promise`, said instead of the usual reply time)."""
    values = {"email": handoff.email, "phone": handoff.phone, "when": reply_time}
    usual = "" if promise else reply_time
    if handoff.email and usual:
        text = gettext(
            "Thanks! A person from our team will reply to %(email)s, usually within %(when)s."
        )
    elif handoff.email:
        text = gettext("Thanks! A person from our team will reply to %(email)s.")
    elif usual:
        text = gettext(
            "Thanks! A person from our team will call you at %(phone)s, usually within %(when)s."
        )
    else:
        text = gettext("Thanks! A person from our team will call you at %(phone)s.")
    text = text % values
    if promise:
        text += " " + promise
    if handoff.email:
        text += " " + gettext("The answer will also appear here in the chat.")
    return {
        "type": FrameType.HANDOFF_SAVED,
        "id": client_id,
        "handoff": handoff.pk,
        "email": handoff.email,
        "phone": handoff.phone,
        "reply_time": reply_time,
        "message": text,
    }


def shop_message_frame(message_id: int, text: str) -> dict:
    """A person of the shop wrote (a hand-off's reply, or during a take-over)."""
    return {"type": FrameType.SHOP_MESSAGE, "message": message_id, "text": text}


def person_frame(present: bool) -> dict:
    """A person of the shop joined (`present`) or left the conversation."""
    return {"type": FrameType.PERSON, "present": present}


def received_frame(ask_id: str) -> dict:
    """The ask is stored for the person who has the conversation, not answered by the bot."""
    return {"type": FrameType.RECEIVED, "id": ask_id}


# --- The handshake ----------------------------------------------------------------------------

_http_url = URLValidator(schemes=["http", "https"])


def clean_page(value: str) -> str:
    """The `page` a client reports, if it is an http(s) URL of at most 500 characters, else ""."""
    value = clean_text(value).strip()
    if len(value) > 500:
        return ""
    try:
        _http_url(value)
    except ValidationError:
        return ""
    return value


def site_origin(scope: dict, headers: dict[str, str]) -> str | None:
    """This ShopBot site's own origin (its pages, e.g. the demo storefront), or None.

    SITE_URL when it is set. Otherwise the address this connection came in on, but only when its
    Host names a host of ALLOWED_HOSTS exactly (never `*` or `.domain`: Django refuses other Hosts
    on plain HTTP, and a forged Host must not make evil.example "this site"), with the scheme this
    connection really uses (wss, or https at the proxy per SECURE_PROXY_SSL_HEADER) and the Host's
    port. So another scheme or port of an allowed host name is not "this site"."""
    if site_url():
        return normalise_origin(site_url())
    host = headers.get("host", "").strip().lower()
    secure = scope.get("scheme") == "wss"
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:  # ("HTTP_X_FORWARDED_PROTO", "https") -> header x-forwarded-proto
        name = proxy[0].removeprefix("HTTP_").lower().replace("_", "-")
        secure = headers.get(name, "").split(",")[0].strip().lower() == proxy[1]
    origin = normalise_origin(f"{'https' if secure else 'http'}://{host}") if host else None
    if origin is None:
        return None
    hostname = urlsplit(origin).hostname
    exact = [h.lower().strip("[]") for h in settings.ALLOWED_HOSTS if h != "*" and h[:1] != "."]
    return origin if hostname in exact else None


@dataclass(frozen=True)
class Handshake:
    """What a connecting client says: the shop key (the URL's), its headers (lowercase names),
    `?conversation=`, `?page=` and `?lang=` (data-lang, checked by widget.chat.texts); and
    `site`, this ShopBot site's own origin (site_origin)."""

    key: str
    headers: dict[str, str]
    conversation: str
    page: str
    language: str
    site: str | None

    @classmethod
    def of(cls, scope: dict) -> Handshake:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        # Shown to the owner, so only a real http(s) address; else the Origin (also checked).
        page = clean_page((query.get("page") or [""])[0]) or clean_page(headers.get("origin", ""))
        key = scope["url_route"]["kwargs"]["key"]
        return cls(
            # A key with a NUL or a lone surrogate is no shop's, and PostgreSQL could not even
            # compare it: "" (unknown, 4404) rather than a failed query.
            key=key if clean_text(key) == key else "",
            headers=headers,
            conversation=(query.get("conversation") or [""])[0],
            page=page,
            language=(query.get("lang") or [""])[0],
            site=site_origin(scope, headers),
        )

    @property
    def origin(self) -> str | None:
        """None when the client sent no Origin (not a browser: browsers always send one)."""
        return self.headers.get("origin")

    @property
    def user_agent(self) -> str:
        return clean_text(self.headers.get("user-agent", ""))
