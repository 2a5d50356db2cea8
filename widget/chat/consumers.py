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

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from django.utils import translation

from faq.hours.models import schedule_at, shop_schedule
from faq.hours.schedule import Schedule
from faq.models import OriginSeen, Shop
from lib.internals import daphne_transport, is_unsaved, prepared_models, receive_backlog
from widget.chat import handoff, limits, pipeline, protocol
from widget.chat.protocol import (
    Ask,
    Close,
    Closing,
    ErrorCode,
    Feedback,
    HandoffRequest,
    Handshake,
    HoursRequest,
    Ping,
    Refused,
    error_frame,
    read_frame,
)
from widget.chat.texts import chat_language
from widget.models import Conversation, CustomerWording, Message

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 200


@database_sync_to_async
def get_shop(key: str) -> Shop | None:
    """The shop of the key, with the version of its hours (`hours_version`, None without hours)
    read in the same query, for `open_conversation`'s cached Schedule."""
    if not key:
        return None
    shops = prepared_models(Shop, '"faq_shop"."public_key" = %s', [key], _HOURS_VERSION)
    return shops[0] if shops else None


# The shop's ShopHours.version beside its row (public_key is unique: one row at most).
_HOURS_VERSION = {
    "hours_version": 'SELECT "version" FROM "faq_shophours" WHERE "shop_id" = "faq_shop"."id"'
}


@database_sync_to_async
def open_conversation(
    shop: Shop, handshake: Handshake, language: str
) -> tuple[Conversation, dict, set[str]]:
    """The shop's conversation `?conversation=` names, or a new one; its `ready` frame (the
    widget's texts in `language`, the chat's); the ask ids of its questions (for the
    conversation-length limit). A new conversation is not saved here: `save_conversation` stores
    it at its first ask. An unknown, malformed or other shop's
    id is not an error: a new conversation starts."""
    try:
        wanted = uuid.UUID(handshake.conversation) if handshake.conversation else None
    except ValueError:
        wanted = None
    conversation = Conversation.objects.filter(pk=wanted, shop=shop).first() if wanted else None
    history, asked = [], set()
    if conversation is None:
        conversation = Conversation(
            shop=shop,
            page_url=handshake.page,
            user_agent=handshake.user_agent[:300],
            language=language,
        )
    else:
        conversation.shop = shop
        if conversation.language != language:  # the customer came back in another language
            conversation.language = language
            conversation.save(update_fields=["language"])
        history = list(reversed(conversation.messages.order_by("-id")[:HISTORY_LIMIT]))
        asked = set(
            conversation.messages.filter(role=Message.USER).values_list("ask_id", flat=True)
        )
    schedule = schedule_at(shop.pk, shop.hours_version)
    ready = protocol.ready_frame(
        conversation, shop, language, history, handshake.site or "", schedule
    )
    return conversation, ready, asked


@database_sync_to_async
def load_schedule(shop: Shop) -> Schedule | None:
    """The shop's opening hours as they are now (the owner may have changed them)."""
    return shop_schedule(shop.pk)


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


def pause_reading(send) -> None:
    """Leave the client's frames unread in the kernel's buffers for now (daphne only)."""
    if transport := daphne_transport(send):
        transport.pauseProducing()


def resume_reading(send) -> None:
    if transport := daphne_transport(send):
        transport.resumeProducing()


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
    language: str = "en"  # the chat's
    limiter: limits.ConnectionLimits | None = None
    closing = False  # once set, incoming frames are dropped unread
    group: str | None = None  # the conversation's channel-layer group, once joined
    person = False  # a person of the shop has taken the conversation over (as last told)

    async def __call__(self, scope, receive, send) -> None:
        # How many frames the client has written that we have not read yet.
        self.backlog = receive_backlog(receive)
        # The parent's loop, channel layer included; the `finally` frees the connection slot and
        # stops the asks even when daphne cancels a consumer that took too long to shut down, a
        # path on which disconnect() never runs.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.release()

    async def dispatch(self, message: dict) -> None:
        """Each message to its handler, as channels' dispatch does, but without the
        close_old_connections() channels runs before every message: a hop through the one thread
        all database_sync_to_async calls share, twice a connection at least (its connect and its
        disconnect), for nothing: every database call made from here closes its own connections
        (database_sync_to_async, and the pipeline's `db_thread`, in their own threads)."""
        if message["type"] == "websocket.receive":
            # The hot path, and the flood path: the budget is spent before anything is decoded.
            if self.closing:
                return
            # Frames already waiting count too: a flooder has written thousands before we read
            # its first, and reading them one by one takes a trip round the event loop each,
            # which under a flood is slow. More waiting than tokens left: close now.
            if not self.budget.take(waiting=self.backlog()):
                logger.info("Closed a chat writing too fast (%s)", self.limiter and self.limiter.ip)
                await self.refuse(Closing(Close.TOO_MANY_FRAMES))
                return
            await self.websocket_receive(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def refuse(self, closing: Closing) -> None:
        """Close (after the error frame, if any), drop whatever the client still sends, free the
        slot now."""
        self.closing = True
        if closing.error is not None:
            await self.send_json(closing.error.frame())
        await self.close(code=int(closing.code))  # daphne refuses an IntEnum
        if closing.code == Close.TOO_MANY_FRAMES:
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
        self.limiter = limits.ConnectionLimits(self.scope)
        handshake = Handshake.of(self.scope)
        # The chat's language: data-lang (?lang=) if supported, else the shop's once it is known.
        # Each connection runs in its own asyncio task, whose context keeps the active language,
        # so every sentence of this connection, in its asks' tasks and threads too, is in it.
        translation.activate(chat_language(handshake.language, ""))
        # Accept before any refusal: a close during the handshake reaches a browser as a bare
        # 1006, while a close after accept carries our code, which the widget acts on.
        await self.accept()
        # Nothing is read until `ready` is sent (a client has nothing to say before it): a
        # flooder's frames then reach us in one batch, the first of which closes it, instead of
        # being parsed the whole time the shop is looked up.
        pause_reading(self.base_send)
        try:
            await self.limiter.connect()
            shop = await self.check_origin(handshake)
            language = chat_language(handshake.language, shop.language)
            translation.activate(language)
            conversation, ready, self.limiter.asked = await open_conversation(
                shop, handshake, language
            )
        except DatabaseError:
            logger.exception("Database unavailable while opening a chat")
            await self.refuse(Closing(Close.TRY_AGAIN_LATER, Refused(ErrorCode.UNAVAILABLE)))
            return
        except Closing as closing:
            await self.refuse(closing)
            return
        # Where the links to the hosted FAQ page point: this site's own origin, as trusted as
        # for the origin check (SITE_URL, or an ALLOWED_HOSTS Host); else they are paths.
        self.shop, self.conversation, self.site = shop, conversation, handshake.site or ""
        self.language = language
        self.person = ready["person"]
        # What the shop says in this conversation (an owner's reply, from any server process)
        # reaches this socket through the conversation's group.
        try:
            await self.channel_layer.group_add(conversation.group, self.channel_name)
            self.group = conversation.group
        except Exception:  # the chat still works; only live replies are missed (history has them)
            logger.warning("Could not join the conversation's group", exc_info=True)
        await self.send_json(ready)
        if conversation.person_until is not None:
            # An owner has (or had) this conversation: the widget shows whether a person is here.
            await self.send_json(protocol.person_frame(self.person))
        resume_reading(self.base_send)

    async def check_origin(self, handshake: Handshake) -> Shop:
        """The shop of the key when the page's Origin may use it (Shop.allows_origin), else
        Closing."""
        shop = await get_shop(handshake.key)
        if shop is None:
            raise Closing(Close.UNKNOWN_SHOP)
        if not shop.allows_origin(handshake.origin, handshake.site):
            raise Closing(Close.FORBIDDEN_ORIGIN)
        if listed := shop.listed_origin(handshake.origin or ""):
            # The set-up checklist's "seen live": one upsert per connection from a listed site.
            try:
                await record_origin(shop, listed)
            except DatabaseError:
                logger.warning("Could not record the chat's origin", exc_info=True)
        return shop

    async def disconnect(self, code: int) -> None:
        self.closing = True
        await self.release()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conversation is None:
            return  # refused connection, closing
        try:
            frame = read_frame(text_data)
        except Refused as refused:
            await self.send_json(refused.frame())
            return
        handlers = {
            Ask: self.on_ask,
            Feedback: self.on_feedback,
            Ping: self.on_ping,
            HandoffRequest: self.on_handoff,
            HoursRequest: self.on_hours,
        }
        await handlers[type(frame)](frame)

    async def on_handoff(self, request: HandoffRequest) -> None:
        """The customer leaves a question for a person (widget/chat/handoff.py). Hand-offs count
        against the same per-connection and per-address rates as asks."""
        try:
            await self.limiter.check_rates(request.id)
            fields = handoff.clean_request(request, self.shop)
            if is_unsaved(self.conversation):  # "Talk to a person" before any question
                await save_conversation(self.conversation)
            saved = await handoff.save_request(self.conversation, request.id, fields, self.site)
        except Refused as refused:
            refused.ask_id = request.id
            await self.send_json(refused.frame())
            return
        except DatabaseError:
            logger.exception("Database unavailable while saving a hand-off")
            await self.send_json(error_frame(ErrorCode.UNAVAILABLE, request.id))
            return
        try:
            promise = protocol.reply_promise(await load_schedule(self.shop), self.language)
        except DatabaseError:
            logger.warning("Could not read the shop's hours for the hand-off", exc_info=True)
            promise = None  # the request is saved: say the usual reply time
        await self.send_json(
            protocol.handoff_saved_frame(request.id, saved, self.shop.reply_time_text(), promise)
        )

    async def on_hours(self, request: HoursRequest) -> None:
        """The widget asks for the shop's status again (its `next_change` has come)."""
        try:
            schedule = await load_schedule(self.shop)
        except DatabaseError:
            logger.exception("Database unavailable while reading the shop's hours")
            await self.send_json(error_frame(ErrorCode.UNAVAILABLE))
            return
        await self.send_json(protocol.hours_frame(schedule, self.language))

    async def person_changed(self, event: dict) -> None:
        """An owner took the conversation over, or handed it back to the bot."""
        self.person = bool(event["present"])
        if not self.closing:
            await self.send_json(protocol.person_frame(self.person))

    async def shop_message(self, event: dict) -> None:
        """A person of the shop wrote in this conversation (Conversation.say, any process)."""
        if not self.closing:
            await self.send_json(protocol.shop_message_frame(event["message"], event["text"]))

    async def on_ping(self, ping: Ping) -> None:
        await self.limiter.touch()  # an open widget pings every 25 s: its slot stays taken
        await self.send_json(protocol.pong_frame())

    async def on_feedback(self, feedback: Feedback) -> None:
        try:
            # Nothing asked yet: nothing to rate.
            saved = not is_unsaved(self.conversation) and await save_feedback(
                self.conversation, feedback.message, feedback.value
            )
        except DatabaseError:
            logger.exception("Database unavailable while saving feedback")
            await self.send_json(error_frame(ErrorCode.UNAVAILABLE))
            return
        if not saved:
            await self.send_json(Refused(ErrorCode.BAD_REQUEST, "feedback_elsewhere").frame())
            return
        await self.send_json(protocol.feedback_saved_frame(feedback.message))

    async def on_ask(self, ask: Ask) -> None:
        if ask.id in self.tasks:
            return  # already being answered on this connection: that answer frame will come
        try:
            # The one place an ask can be refused before it costs anything.
            await self.limiter.check_ask(ask, len(self.tasks), self.shop.contact())
        except Refused as refused:
            await self.send_json(refused.frame())
            return
        # A new conversation is stored by its first ask's answering thread, with the question
        # (pipeline.prepare): not by channels' one database thread, which 200 first asks at
        # once queued behind each other.
        if self.person:
            # A person took the conversation over: the question waits for them, not the bot
            # (unless their take-over has run out meanwhile).
            try:
                if await handoff.person_present(self.conversation):
                    await handoff.hold_question(self.conversation, ask.id, ask.text)
                    await self.send_json(protocol.received_frame(ask.id))
                    return
            except DatabaseError:
                logger.exception("Database unavailable while storing a question for a person")
                await self.send_json(error_frame(ErrorCode.UNAVAILABLE, ask.id))
                return
            self.person = False
            await self.send_json(protocol.person_frame(False))
        self.tasks[ask.id] = asyncio.create_task(self.run_ask(ask.id, ask.text, ask.entry))

    async def run_ask(self, ask_id: str, text: str, entry: int | None = None) -> None:
        async def on_delta(chunk: str) -> None:
            await self.send_json(protocol.delta_frame(ask_id, chunk))

        try:
            async with self.turn:
                message = await pipeline.answer(
                    self.conversation, ask_id, text, on_delta, entry, client=self.limiter.ip
                )
            await self.send_json(protocol.answer_frame(message, self.shop, self.site))
        except pipeline.UnknownEntry:
            await self.send_json(error_frame(ErrorCode.UNKNOWN_ENTRY, ask_id))
        except DatabaseError:
            logger.exception("Database unavailable while answering")
            await self.send_json(error_frame(ErrorCode.UNAVAILABLE, ask_id))
        except Exception:
            logger.exception("Unexpected error while answering")
            await self.send_json(error_frame(ErrorCode.UNAVAILABLE, ask_id))
        finally:
            self.tasks.pop(ask_id, None)
