"""
The chat websocket: `/ws/chat/<public shop key>/`. The protocol is documented in docs/protocol.md.

Each ask runs in its own task, so a slow Claude stream never holds up pings or feedback on the same
socket; a per-connection lock keeps the asks of one conversation answered in order.

A conversation row is created at the first ask, not at connect: connecting and closing in a loop
stores nothing an owner would see. Every incoming frame first spends a token of the connection's
frame budget (widget/chat/limits.py); a client writing faster is closed with 4008 and its remaining
queued frames are dropped unread, so a flood cannot build a backlog in the server.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import DatabaseError

from faq.models import OriginSeen, Shop
from widget.chat import handoff, limits, pipeline
from widget.models import Conversation, CustomerWording, Message

logger = logging.getLogger(__name__)

# Close codes; 4xxx are ours, the widget stops reconnecting on 4403 and 4404.
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_UNKNOWN_SHOP = 4404
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_TOO_MANY_FRAMES = limits.CLOSE_TOO_MANY_FRAMES

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


def site_origin(scope: dict, headers: dict[str, str]) -> str | None:
    """This ShopBot site's own origin (its pages, e.g. the demo storefront), or None.

    SITE_URL when it is set. Otherwise the address this connection came in on, but only when its
    Host names a host of ALLOWED_HOSTS exactly (never `*` or `.domain`: Django refuses other Hosts
    on plain HTTP, and a forged Host must not make evil.example "this site"), with the scheme this
    connection really uses (wss, or https at the proxy per SECURE_PROXY_SSL_HEADER) and the Host's
    port. So another scheme or port of an allowed host name is not "this site"."""
    if settings.SITE_URL:
        return normalise_origin(settings.SITE_URL)
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


def listed_origin(shop: Shop, origin: str) -> str | None:
    """`origin`, normalised, if it is one of the shop's allowed websites; else None."""
    wanted = normalise_origin(origin)
    listed = wanted is not None and wanted in {normalise_origin(o) for o in shop.origins}
    return wanted if listed else None


def origin_allowed(shop: Shop, origin: str, own: str | None) -> bool:
    """The shop's allowed origins, or `own`, this site itself (see site_origin)."""
    wanted = normalise_origin(origin)
    if wanted is None:  # includes "null" (sandboxed frames, file: pages)
        return False
    return wanted == own or listed_origin(shop, wanted) is not None


_http_url = URLValidator(schemes=["http", "https"])


def clean_page(value: str) -> str:
    """The `page` a client reports, if it is an http(s) URL of at most 500 characters, else ""."""
    value = limits.clean_text(value).strip()
    if len(value) > 500:
        return ""
    try:
        _http_url(value)
    except ValidationError:
        return ""
    return value


@database_sync_to_async
def get_shop(key: str) -> Shop | None:
    return Shop.objects.filter(public_key=key).first()


def history_item(message: Message, shop: Shop | None = None, site: str = "") -> dict:
    if message.role == Message.USER:
        return {"role": "user", "id": message.ask_id, "text": message.text}
    if message.role == Message.SHOP:  # a person of the shop answering a customer request
        return {"role": "shop", "id": message.ask_id, "text": message.text, "message": message.pk}
    return {
        "role": "bot",
        "id": message.ask_id,
        "text": message.text,
        "message": message.pk,
        "sources": shop.with_urls(message.sources, site) if shop else message.sources,
        "mode": message.mode,
        "suggestions": message.suggestions,
        "feedback": message.feedback or None,
    }


@database_sync_to_async
def open_conversation(
    shop: Shop, conversation_id: str, page_url: str, user_agent: str, site: str = ""
) -> tuple[Conversation, bool, list[dict], set[str]]:
    """Resume the shop's conversation with that id, or start a new one. Also returns the ask ids
    of its questions (for the conversation-length limit). A new conversation is not saved here:
    `save_conversation` stores it at its first ask."""
    try:
        wanted = uuid.UUID(conversation_id) if conversation_id else None
    except ValueError:
        wanted = None
    conversation = Conversation.objects.filter(pk=wanted, shop=shop).first() if wanted else None
    if conversation is None:
        conversation = Conversation(shop=shop, page_url=page_url, user_agent=user_agent[:300])
        return conversation, False, [], set()
    conversation.shop = shop
    recent = conversation.messages.order_by("-id")[:HISTORY_LIMIT]
    asked = set(conversation.messages.filter(role=Message.USER).values_list("ask_id", flat=True))
    return conversation, True, [history_item(m, shop, site) for m in reversed(recent)], asked


@database_sync_to_async
def save_conversation(conversation: Conversation) -> None:
    conversation.save(force_insert=True)


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


@database_sync_to_async
def record_origin(shop: Shop, origin: str) -> None:
    OriginSeen.record(shop, origin)


def answer_frame(ask_id: str, message: Message, shop: Shop, site: str = "") -> dict:
    return {
        "type": "answer",
        "id": ask_id,
        "message": message.pk,
        "text": message.text,
        # Each source with the link to its entry on the shop's FAQ page (docs/protocol.md).
        "sources": shop.with_urls(message.sources, site),
        "mode": message.mode,
        "suggestions": message.suggestions,
        "contact": shop.contact(),
    }


def daphne_protocol(send):
    """The daphne connection (an autobahn protocol) behind a consumer's `send`, or None.

    daphne passes each connection's `send` as partial(server.handle_reply, protocol), the one way
    to reach the socket from the application; under any other server this returns None and the
    helpers below do nothing."""
    protocol = (getattr(send, "args", None) or (None,))[0]
    return protocol if hasattr(getattr(protocol, "transport", None), "pauseProducing") else None


def pause_reading(send) -> None:
    """Leave the client's frames unread in the kernel's buffers for now."""
    if protocol := daphne_protocol(send):
        protocol.transport.pauseProducing()


def resume_reading(send) -> None:
    if protocol := daphne_protocol(send):
        protocol.transport.resumeProducing()


def stop_reading(send) -> None:
    """Stop reading a flooding client once our close frame is on its way.

    After a close, the websocket library would go on reading and parsing the client's frames
    until the client answered the close, or for its one-second handshake timeout. A flooder never
    answers, and parsing its frames during that second cost as much CPU as the flood itself
    (another customer's asks went from 30 ms to 450 ms, measured with bench/bench_flood.py).
    Paused, they stay unread in the kernel's buffers; the timeout still drops the connection, and
    daphne then sends the disconnect as usual. (Dropping the connection at once instead was
    worse: the flooder reconnected sooner, and the unread data turned the close into a reset, so
    it never saw our close code.)"""
    pause_reading(send)


class ChatConsumer(AsyncJsonWebsocketConsumer):
    shop: Shop | None = None
    conversation: Conversation | None = None
    site: str = ""
    limiter: limits.ConnectionLimits | None = None
    closing = False  # once set, incoming frames are dropped unread
    group: str | None = None  # the conversation's channel-layer group, once joined
    person = False  # a person of the shop has taken the conversation over (as last told)

    async def __call__(self, scope, receive, send) -> None:
        # Daphne (like channels' test communicator) hands each connection its own asyncio.Queue's
        # get(): its size is how many frames the client has written that we have not read yet.
        queue = getattr(receive, "__self__", None)
        self.backlog = queue.qsize if isinstance(queue, asyncio.Queue) else lambda: 0
        # The parent's loop, channel layer included; the `finally` frees the connection slot and
        # stops the asks even when daphne cancels a consumer that took too long to shut down, a
        # path on which disconnect() never runs.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.release()

    async def dispatch(self, message: dict) -> None:
        if message["type"] == "websocket.receive":
            # The hot path, and the flood path: the budget is spent before anything is decoded,
            # and the parent's per-message close_old_connections() (a hop through the one
            # thread all database_sync_to_async calls share) is skipped: every database call
            # made from here closes its own connections.
            if self.closing:
                return
            # Frames already waiting count too: a flooder has written thousands before we read
            # its first, and reading them one by one takes a trip round the event loop each,
            # which under a flood is slow. More waiting than tokens left: close now.
            if not self.budget.take(waiting=self.backlog()):
                logger.info("Closed a chat writing too fast (%s)", self.limiter and self.limiter.ip)
                await self.refuse(CLOSE_TOO_MANY_FRAMES)
                return
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def refuse(self, code: int) -> None:
        """Close with `code`, drop whatever the client still sends, free the slot now."""
        self.closing = True
        await self.close(code=code)
        if code == CLOSE_TOO_MANY_FRAMES:
            stop_reading(self.base_send)
        else:
            resume_reading(self.base_send)  # to read the client's answer to our close
        await self.release()

    async def release(self) -> None:
        """Free the connection slot and stop the asks; safe to call more than once."""
        if self.limiter is not None:
            await self.limiter.disconnect()
        if self.group is not None:
            group, self.group = self.group, None
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # Redis gone: the group forgets the channel when it expires
                logger.warning("Could not leave the conversation's group", exc_info=True)
        tasks = list(getattr(self, "tasks", {}).values())
        for task in tasks:
            task.cancel()
        # The questions are saved; an unanswered one is answered when the client re-sends it.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def connect(self) -> None:
        self.budget = limits.FrameBudget(settings.CHAT_FRAME_BURST, settings.CHAT_FRAMES_PER_MINUTE)
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
        # Nothing is read until `ready` is sent (a client has nothing to say before it): a
        # flooder's frames then reach us in one batch, the first of which closes it, instead of
        # being parsed the whole time the shop is looked up.
        pause_reading(self.base_send)
        self.limiter = limits.ConnectionLimits(self.scope)
        if not await self.limiter.connect():
            await self.send_error(
                None, "rate_limited", "Too many chats are open from your network; close one first."
            )
            await self.refuse(limits.CLOSE_TOO_MANY_CONNECTIONS)
            return
        try:
            shop = await get_shop(self.scope["url_route"]["kwargs"]["key"])
        except DatabaseError:
            logger.exception("Database unavailable while opening a chat")
            await self.send_error(None, "unavailable")
            await self.refuse(CLOSE_TRY_AGAIN_LATER)
            return
        if shop is None:
            await self.refuse(CLOSE_UNKNOWN_SHOP)
            return
        origin = headers.get("origin")
        # No Origin: not a browser (browsers always send one on websockets), so it cannot be
        # another website's page borrowing the key. Curl, the bench and the tests connect so.
        own = site_origin(self.scope, headers)
        if origin is not None and not origin_allowed(shop, origin, own):
            await self.refuse(CLOSE_FORBIDDEN_ORIGIN)
            return

        # Where the links to the hosted FAQ page point: this site's own origin, as trusted as
        # for the origin check (SITE_URL, or an ALLOWED_HOSTS Host); else they are paths.
        self.site = own or ""
        if listed := listed_origin(shop, origin or ""):
            # The set-up checklist's "seen live": one upsert per connection from a listed site.
            try:
                await record_origin(shop, listed)
            except DatabaseError:
                logger.warning("Could not record the chat's origin", exc_info=True)

        # Shown to the owner, so only a real http(s) address; else the Origin (also checked).
        page = clean_page((query.get("page") or [""])[0]) or clean_page(origin or "")
        try:
            conversation, resumed, history, asked = await open_conversation(
                shop,
                (query.get("conversation") or [""])[0],
                page,
                limits.clean_text(headers.get("user-agent", "")),
                site=self.site,
            )
        except DatabaseError:
            logger.exception("Database unavailable while opening a chat")
            await self.send_error(None, "unavailable")
            await self.refuse(CLOSE_TRY_AGAIN_LATER)
            return
        self.shop, self.conversation = shop, conversation
        self.limiter.asked = asked
        self.person = resumed and conversation.person_present
        # What the shop says in this conversation (an owner's reply, from any server process)
        # reaches this socket through the conversation's group.
        try:
            await self.channel_layer.group_add(conversation.group, self.channel_name)
            self.group = conversation.group
        except Exception:  # the chat still works; only live replies are missed (history has them)
            logger.warning("Could not join the conversation's group", exc_info=True)
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
                # What the "Talk to a person" form asks for (docs/protocol.md, `handoff`).
                "handoff": {"phone": shop.phone_callbacks, "reply_time": shop.reply_time},
                # A person of the shop has taken this conversation over (live take-over).
                "person": self.person,
            }
        )
        resume_reading(self.base_send)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        await self.release()

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
        handlers = {
            "ask": self.on_ask,
            "feedback": self.on_feedback,
            "ping": self.on_ping,
            "handoff": self.on_handoff,
        }
        handler = handlers.get(kind) if isinstance(kind, str) else None  # a list is unhashable
        if handler is None:
            await self.send_error(
                None, "bad_request", "Unknown message type; expected ask, feedback, handoff, ping."
            )
            return
        await handler(content)

    async def send_error(
        self, ask_id: str | None, code: str, message: str = "", **extra: str
    ) -> None:
        await self.send_json(
            {
                "type": "error",
                "id": ask_id,
                "code": code,
                "message": message or MESSAGES[code],
                **extra,
            }
        )

    async def on_handoff(self, content: dict) -> None:
        """The customer leaves a question for a person (widget/chat/handoff.py)."""
        client_id = content.get("id")
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64:
            await self.send_error(
                None, "bad_request", "A handoff needs an id: a string of 1 to 64 characters."
            )
            return
        try:
            fields = handoff.clean_request(content, self.shop)
            if self.conversation._state.adding:  # "Talk to a person" before any question
                await save_conversation(self.conversation)
            saved = await handoff.save_request(self.conversation, client_id, fields, self.site)
        except handoff.Invalid as invalid:
            await self.send_error(client_id, invalid.code, invalid.message, field=invalid.field)
            return
        except limits.Refused as refused:
            await self.send_error(client_id, refused.code, refused.message)
            return
        except DatabaseError:
            logger.exception("Database unavailable while saving a customer request")
            await self.send_error(client_id, "unavailable")
            return
        await self.send_json(handoff.saved_frame(client_id, saved, self.shop))

    async def person_changed(self, event: dict) -> None:
        """An owner took the conversation over, or handed it back to the bot."""
        self.person = bool(event["present"])
        if not self.closing:
            await self.send_json({"type": "person", "present": self.person})

    async def shop_message(self, event: dict) -> None:
        """A person of the shop wrote in this conversation (group_send from Handoff's reply)."""
        if not self.closing:
            await self.send_json(
                {"type": "shop_message", "message": event["message"], "text": event["text"]}
            )

    async def on_ping(self, content: dict) -> None:
        await self.limiter.touch()  # an open widget pings every 25 s: its slot stays taken
        await self.send_json({"type": "pong"})

    async def on_feedback(self, content: dict) -> None:
        message_id, value = content.get("message"), content.get("value")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            await self.send_error(None, "bad_request", "Feedback needs the answer's message id.")
            return
        if value not in (Message.UP, Message.DOWN):
            await self.send_error(None, "bad_request", 'Feedback must be "up" or "down".')
            return
        if self.conversation._state.adding:  # nothing asked yet, so nothing to rate
            await self.send_error(
                None, "bad_request", "That answer is not part of this conversation."
            )
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
        if self.conversation._state.adding:
            # The first ask stores the conversation; frames are handled one at a time, so a
            # second ask cannot race this one.
            try:
                await save_conversation(self.conversation)
            except DatabaseError:
                logger.exception("Database unavailable while starting a conversation")
                await self.send_error(ask_id, "unavailable")
                return
        if self.person:
            # A person took the conversation over: the question waits for them, not the bot
            # (unless their take-over has run out meanwhile).
            try:
                if await handoff.person_present(self.conversation):
                    await handoff.hold_question(self.conversation, ask_id, text)
                    await self.send_json({"type": "received", "id": ask_id})
                    return
            except DatabaseError:
                logger.exception("Database unavailable while storing a question for a person")
                await self.send_error(ask_id, "unavailable")
                return
            self.person = False
            await self.send_json({"type": "person", "present": False})
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
            await self.send_json(answer_frame(ask_id, message, self.shop, self.site))
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
