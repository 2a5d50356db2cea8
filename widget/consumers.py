"""
The chat websocket: `/ws/chat/<public shop key>/`. The protocol is documented in docs/protocol.md.

Each ask runs in its own task, so a slow Claude stream never holds up pings or feedback on the same
socket; a per-connection lock keeps the asks of one conversation answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from faq.models import Shop
from widget import limits, pipeline
from widget.models import Conversation, CustomerWording, Message

logger = logging.getLogger(__name__)

# Close codes; 4xxx are ours, the widget stops reconnecting on 4403 and 4404.
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_UNKNOWN_SHOP = 4404
CLOSE_TRY_AGAIN_LATER = 1013

# Asks waiting on one connection before more are refused; the widget sends one at a time and
# re-sends its few unanswered ones after a reconnect.
MAX_PENDING_ASKS = 10
HISTORY_LIMIT = 200

MESSAGES = {
    "bad_request": "That message could not be understood.",
    "unavailable": "Sorry, the chat is having trouble right now. Please try again in a moment.",
    "unknown_entry": "Sorry, that answer is no longer available. Please ask in your own words.",
}


def normalise_origin(value: str) -> str | None:
    """scheme://host[:port], lowercase, default port dropped; None if not an http(s) origin."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def origin_allowed(shop: Shop, origin: str, host: str) -> bool:
    """The shop's allowed origins, or this site itself (its own pages, e.g. the demo storefront)."""
    wanted = normalise_origin(origin)
    if wanted is None:  # includes "null" (sandboxed frames, file: pages)
        return False
    allowed = {normalise_origin(o) for o in shop.origins}
    if host:
        allowed |= {normalise_origin(f"{scheme}://{host}") for scheme in ("http", "https")}
    if settings.SITE_URL:
        allowed.add(normalise_origin(settings.SITE_URL))
    if wanted in allowed:
        return True
    hostname = urlsplit(wanted).hostname
    # ALLOWED_HOSTS names this site without scheme or port; wildcards never count as "itself".
    return any(h == hostname for h in settings.ALLOWED_HOSTS if h != "*" and not h.startswith("."))


@database_sync_to_async
def get_shop(key: str) -> Shop | None:
    return Shop.objects.filter(public_key=key).first()


def history_item(message: Message) -> dict:
    if message.role == Message.USER:
        return {"role": "user", "id": message.ask_id, "text": message.text}
    return {
        "role": "bot",
        "id": message.ask_id,
        "text": message.text,
        "message": message.pk,
        "sources": message.sources,
        "mode": message.mode,
        "suggestions": message.suggestions,
        "feedback": message.feedback or None,
    }


@database_sync_to_async
def open_conversation(
    shop: Shop, conversation_id: str, page_url: str, user_agent: str
) -> tuple[Conversation, bool, list[dict], set[str]]:
    """Resume the shop's conversation with that id, or start a new one. Also returns the ask ids
    of its questions (for the conversation-length limit)."""
    try:
        wanted = uuid.UUID(conversation_id) if conversation_id else None
    except ValueError:
        wanted = None
    conversation = Conversation.objects.filter(pk=wanted, shop=shop).first() if wanted else None
    if conversation is None:
        conversation = Conversation.objects.create(
            shop=shop, page_url=page_url[:500], user_agent=user_agent[:300]
        )
        conversation.shop = shop
        return conversation, False, [], set()
    conversation.shop = shop
    recent = conversation.messages.order_by("-id")[:HISTORY_LIMIT]
    asked = set(conversation.messages.filter(role=Message.USER).values_list("ask_id", flat=True))
    return conversation, True, [history_item(m) for m in reversed(recent)], asked


@database_sync_to_async
def save_feedback(conversation: Conversation, message_id: int, value: str) -> bool:
    answer = Message.objects.filter(
        pk=message_id, conversation=conversation, role=Message.BOT
    ).first()
    if answer is None:
        return False
    answer.feedback = value
    answer.save(update_fields=["feedback"])
    if value == Message.DOWN:
        CustomerWording.disliked(answer)
    return True


def answer_frame(ask_id: str, message: Message, shop: Shop) -> dict:
    return {
        "type": "answer",
        "id": ask_id,
        "message": message.pk,
        "text": message.text,
        "sources": message.sources,
        "mode": message.mode,
        "suggestions": message.suggestions,
        "contact": shop.contact(),
    }


class ChatConsumer(AsyncJsonWebsocketConsumer):
    shop: Shop | None = None
    conversation: Conversation | None = None

    async def connect(self) -> None:
        self.tasks: dict[str, asyncio.Task] = {}
        self.turn = asyncio.Lock()
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in self.scope["headers"]
        }
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        # Accept before any refusal: a close during the handshake reaches a browser as a bare
        # 1006, while a close after accept carries our code, which the widget acts on.
        await self.accept()
        self.limiter = limits.ConnectionLimits(self.scope)
        if not await self.limiter.connect():
            await self.send_error(
                None, "rate_limited", "Too many chats are open from your network; close one first."
            )
            await self.close(code=limits.CLOSE_TOO_MANY_CONNECTIONS)
            return
        try:
            shop = await get_shop(self.scope["url_route"]["kwargs"]["key"])
        except DatabaseError:
            logger.exception("Database unavailable while opening a chat")
            await self.send_error(None, "unavailable")
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        if shop is None:
            await self.close(code=CLOSE_UNKNOWN_SHOP)
            return
        origin = headers.get("origin")
        # No Origin: not a browser (browsers always send one on websockets), so it cannot be
        # another website's page borrowing the key. Curl, the bench and the tests connect so.
        if origin is not None and not origin_allowed(shop, origin, headers.get("host", "")):
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return

        # Cleaned of what PostgreSQL cannot store (a %00 in the query string is a NUL byte).
        page = limits.clean_text((query.get("page") or [""])[0])
        if not page.startswith(("http://", "https://")):
            page = origin or ""
        try:
            conversation, resumed, history, asked = await open_conversation(
                shop,
                (query.get("conversation") or [""])[0],
                page,
                limits.clean_text(headers.get("user-agent", "")),
            )
        except DatabaseError:
            logger.exception("Database unavailable while opening a chat")
            await self.send_error(None, "unavailable")
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        self.shop, self.conversation = shop, conversation
        self.limiter.asked = asked
        await self.send_json(
            {
                "type": "ready",
                "conversation": str(conversation.pk),
                "resumed": resumed,
                "bot": {
                    "name": shop.bot_name,
                    "greeting": shop.greeting,
                    "suggestions": shop.suggestion_list,
                    "accent": shop.accent_color,
                    "position": shop.position,
                },
                "history": history,
            }
        )

    async def disconnect(self, code: int) -> None:
        if getattr(self, "limiter", None) is not None:
            await self.limiter.disconnect()
        tasks = list(getattr(self, "tasks", {}).values())
        for task in tasks:
            task.cancel()
        # The questions are saved; an unanswered one is answered when the client re-sends it.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None:
            return  # refused connection, closing
        if text_data is None:
            await self.send_error(None, "bad_request", "Send JSON text frames, not binary ones.")
            return
        try:
            # Size checked before parsing; NUL bytes and lone surrogates cleaned out.
            content = limits.decode_frame(text_data)
        except limits.Refused as refused:
            await self.send_error(None, refused.code, refused.message)
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.send_error(None, "bad_request", "Each message must be a JSON object.")
            return
        kind = content.get("type")
        handlers = {"ask": self.on_ask, "feedback": self.on_feedback, "ping": self.on_ping}
        handler = handlers.get(kind) if isinstance(kind, str) else None  # a list is unhashable
        if handler is None:
            await self.send_error(
                None, "bad_request", "Unknown message type; expected ask, feedback or ping."
            )
            return
        await handler(content)

    async def send_error(self, ask_id: str | None, code: str, message: str = "") -> None:
        await self.send_json(
            {"type": "error", "id": ask_id, "code": code, "message": message or MESSAGES[code]}
        )

    async def on_ping(self, content: dict) -> None:
        await self.send_json({"type": "pong"})

    async def on_feedback(self, content: dict) -> None:
        message_id, value = content.get("message"), content.get("value")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            await self.send_error(None, "bad_request", "Feedback needs the answer's message id.")
            return
        if value not in (Message.UP, Message.DOWN):
            await self.send_error(None, "bad_request", 'Feedback must be "up" or "down".')
            return
        try:
            saved = await save_feedback(self.conversation, message_id, value)
        except DatabaseError:
            logger.exception("Database unavailable while saving feedback")
            await self.send_error(None, "unavailable")
            return
        if not saved:
            await self.send_error(
                None, "bad_request", "That answer is not part of this conversation."
            )
            return
        await self.send_json({"type": "feedback_saved", "message": message_id})

    async def on_ask(self, content: dict) -> None:
        ask_id, text = content.get("id"), content.get("text")
        if not isinstance(ask_id, str) or not 1 <= len(ask_id) <= 64:
            await self.send_error(
                None, "bad_request", "An ask needs an id: a string of 1 to 64 characters."
            )
            return
        if not isinstance(text, str) or not text.strip():
            await self.send_error(ask_id, "bad_request", "An ask needs some text.")
            return
        entry = content.get("entry")
        if entry is not None and (not isinstance(entry, int) or isinstance(entry, bool)):
            await self.send_error(
                ask_id, "bad_request", "An ask's entry must be the id of a suggested entry."
            )
            return
        limit = settings.CHAT_MAX_MESSAGE_CHARS
        if len(text) > limit:
            await self.send_error(
                ask_id, "too_long", f"Please keep your message under {limit} characters."
            )
            return
        if ask_id in self.tasks:
            return  # already being answered on this connection: that answer frame will come
        refusal = await self.check_limits(ask_id)
        if refusal is not None:
            await self.send_error(ask_id, *refusal)
            return
        self.tasks[ask_id] = asyncio.create_task(self.run_ask(ask_id, text, entry))

    async def check_limits(self, ask_id: str) -> tuple[str, str] | None:
        """The one place an ask can be refused before it costs anything: return (code, message)
        to refuse it, None to let it through. Per-IP and per-shop limits plug in here."""
        if len(self.tasks) >= MAX_PENDING_ASKS:
            return "rate_limited", "Please wait for the answers to your earlier questions."
        try:
            await self.limiter.check_ask(ask_id, self.shop.contact())
        except limits.Refused as refused:
            return refused.code, refused.message
        return None

    async def run_ask(self, ask_id: str, text: str, entry: int | None = None) -> None:
        async def on_delta(chunk: str) -> None:
            await self.send_json({"type": "delta", "id": ask_id, "text": chunk})

        try:
            async with self.turn:
                message = await pipeline.answer(self.conversation, ask_id, text, on_delta, entry)
            await self.send_json(answer_frame(ask_id, message, self.shop))
        except pipeline.UnknownEntry:
            await self.send_error(ask_id, "unknown_entry")
        except DatabaseError:
            logger.exception("Database unavailable while answering")
            await self.send_error(ask_id, "unavailable")
        except Exception:
            logger.exception("Unexpected error while answering")
            await self.send_error(ask_id, "unavailable")
        finally:
            self.tasks.pop(ask_id, None)
