"""
Abuse limits of the chat websocket, all in one place. Every limit is a setting (see the "Limits"
section of shopbot/settings.py). A refused ask gets an `error` frame and the socket stays open;
only too many frames (4008) or too many connections from one address (4429) close it.

- Frames: a token bucket per connection (`FrameBudget`, every frame type counts) closes a socket
  that writes faster than a person could with code 4008, before the frame is even parsed, so a
  flood cannot build a backlog in the server. (The size and nesting of one frame are checked
  when it is decoded: widget/chat/protocol.py.)
- Open connections per client address (`ConnectionLimits.connect`, closes with 4429).
- Asks: `ConnectionLimits.check_ask` is the one place an ask is refused before it costs
  anything, in this order: its length (`CHAT_MAX_MESSAGE_CHARS`); asks still waiting on this
  connection (`MAX_PENDING_ASKS`); asks per connection per minute (this process's memory: a
  connection lives in one process); asks per client address per minute; questions per
  conversation, counted in this connection's memory from the conversation's ask ids, which are
  loaded once when it opens (no query per ask).
- Open connections and asks per client address are counted by lib/ratelimit.py (the FAQ page's
  counters too): in Redis when REDIS_URL is set, so they hold across every server process
  sharing it; otherwise in this process's memory.
- Hand-offs: each `handoff` frame counts against the asks' per-connection and per-address
  rates (`ConnectionLimits.check_rates`, which `check_ask` uses too), so one client cannot save
  hundreds of requests from fresh conversations; then `check_handoff`, counted in the database
  so it holds across processes: HANDOFFS_PER_CONVERSATION_PER_HOUR from one conversation,
  HANDOFFS_PER_ADDRESS_PER_HOUR from one email address (in any case) or phone number (however
  spaced) to one shop.
- A shop's monthly Claude token budget refuses nothing: once spent, answers come from the FAQ
  (`Shop.within_token_budget` of `Message.objects.claude_tokens`, checked by the pipeline).

There is deliberately no global or per-shop ask limit: one noisy visitor must never lock out
everyone else. When the client address is unknown the per-address limits are skipped rather than
lumping every unknown client into one bucket. When Redis fails, the limits fail open (and say so
in the log): a broken limiter must not take the chat down.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from lib import ratelimit, web
from widget.chat.protocol import Ask, Close, Closing, ErrorCode, Refused
from widget.models import Conversation, Handoff

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Asks waiting on one connection before more are refused; the widget sends one at a time and
# re-sends its few unanswered ones after a reconnect.
MAX_PENDING_ASKS = 10
# A connection slot is forgotten this long after its last ask or ping (the widget pings every
# 25 s), so the slots of a server process that died without saying goodbye free themselves in
# minutes. The consumer frees its slot itself on every way out, even when it is cancelled.
CONNECTION_TTL_SECONDS = 600


# --- Frames -----------------------------------------------------------------------------------


class FrameBudget:
    """A token bucket: `burst` frames at once, refilled at `per_minute`. `take()` is a few float
    operations, cheap enough to run on every frame at flood rates, before anything is parsed."""

    __slots__ = ("burst", "rate", "tokens", "stamp")

    def __init__(self, burst: int, per_minute: int) -> None:
        self.burst, self.rate = float(burst), per_minute / 60.0
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self, waiting: int = 0) -> bool:
        """True if this frame fits, and the `waiting` frames behind it could too; False once the
        client has written too fast. Only this frame's token is spent."""
        if self.burst <= 0:  # a burst of 0 turns the limit off
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1 + waiting:
            return False
        self.tokens -= 1
        return True


# --- Client address ---------------------------------------------------------------------------


def client_ip(scope: dict) -> str | None:
    """The websocket's client address, by lib.web.client_ip's rule (TRUSTED_PROXY_HEADER)."""
    # Reversed, so that of a repeated header the first counts (a dict keeps the last).
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in reversed(scope.get("headers", []))
    }
    client = scope.get("client")
    return web.client_ip(client[0] if client else None, headers)


# --- Per connection ---------------------------------------------------------------------------


@dataclass
class ConnectionLimits:
    """The limits of one websocket connection. The consumer calls `connect()` after accepting,
    `check_ask()` before answering, `touch()` on pings and `disconnect()` when the socket
    closes."""

    scope: dict

    def __post_init__(self) -> None:
        self.ip = client_ip(self.scope)
        self.member = uuid.uuid4().hex
        self.holds_slot = False
        self.asks: list[float] = []  # this connection's recent ask times
        # Ask ids of the conversation's questions: loaded with the conversation when the socket
        # opens, then kept here, so the length limit costs no query per ask. (Two tabs on one
        # conversation can each let a question through at the limit: it is a length cap, not a
        # security boundary.)
        self.asked: set[str] = set()

    async def connect(self) -> None:
        """Take a connection slot of the client address; Closing (4429) if it already has
        CHAT_CONNECTIONS_PER_IP sockets open."""
        limit = settings.CHAT_CONNECTIONS_PER_IP
        if not self.ip or limit <= 0:
            return
        try:
            self.holds_slot = await ratelimit.async_counters().take_slot(
                f"conn:{self.ip}", self.member, limit, CONNECTION_TTL_SECONDS
            )
        except Exception:
            logger.warning("Connection limit unavailable, letting the connection in", exc_info=True)
            return
        if not self.holds_slot:
            logger.info("Refused a chat connection from %s: %s already open", self.ip, limit)
            raise Closing(
                Close.TOO_MANY_CONNECTIONS, Refused(ErrorCode.RATE_LIMITED, "address_connections")
            )

    async def touch(self) -> None:
        """Keep this connection's slot from expiring (called on pings)."""
        if not self.holds_slot:
            return
        try:
            await ratelimit.async_counters().touch_slot(f"conn:{self.ip}", self.member)
        except Exception:
            logger.warning("Could not refresh a connection slot", exc_info=True)

    async def disconnect(self) -> None:
        if not self.holds_slot:
            return
        self.holds_slot = False
        try:
            await ratelimit.async_counters().free_slot(f"conn:{self.ip}", self.member)
        except Exception:
            logger.warning("Could not free a connection slot (it expires by itself)", exc_info=True)

    async def check_rates(self, frame_id: str) -> None:
        """Raise Refused (rate_limited) if one more ask or hand-off from this connection, or from
        its client address (across connections, and processes with Redis), would pass its
        per-minute limit. Every attempt counts."""
        now = time.monotonic()
        per_connection = settings.CHAT_ASKS_PER_CONNECTION_PER_MINUTE
        self.asks = [t for t in self.asks if t > now - WINDOW_SECONDS]
        if per_connection > 0 and len(self.asks) >= per_connection:
            raise Refused(ErrorCode.RATE_LIMITED, "connection_rate", frame_id)
        self.asks.append(now)

        per_ip = settings.CHAT_ASKS_PER_IP_PER_MINUTE
        if self.ip and per_ip > 0:
            try:
                store = ratelimit.async_counters()
                count = await store.hit(f"ip:{self.ip}", WINDOW_SECONDS)
                if self.holds_slot:
                    await store.touch_slot(f"conn:{self.ip}", self.member)
            except Exception:
                logger.warning("Rate limit unavailable, letting the frame through", exc_info=True)
            else:
                if count > per_ip:
                    raise Refused(ErrorCode.RATE_LIMITED, "address_rate", frame_id)

    async def check_ask(self, ask: Ask, pending: int, contact: dict[str, str]) -> None:
        """Raise Refused if this ask goes over a limit (see the module's docstring for which, in
        order); `pending` asks are still being answered on this connection, `contact` is the
        shop's, for the conversation-full message. Every attempt counts towards the rates."""
        ask_id = ask.id
        most_chars = settings.CHAT_MAX_MESSAGE_CHARS
        if len(ask.text) > most_chars:
            raise Refused(ErrorCode.TOO_LONG, ask_id=ask_id, limit=most_chars)
        if pending >= MAX_PENDING_ASKS:
            raise Refused(ErrorCode.RATE_LIMITED, "pending_asks", ask_id)

        await self.check_rates(ask_id)

        # A re-sent ask that is already stored does not count again: it must still get its answer.
        most = settings.CHAT_MAX_ASKS_PER_CONVERSATION
        if most > 0 and ask_id not in self.asked and len(self.asked) >= most:
            route = ", ".join(contact.values())  # an address, a number, a link: no labels
            if route:
                raise Refused(
                    ErrorCode.CONVERSATION_FULL, "conversation_full_contact", ask_id, route=route
                )
            raise Refused(ErrorCode.CONVERSATION_FULL, ask_id=ask_id)
        self.asked.add(ask_id)


# --- Hand-offs ----------------------------------------------------------------------------------


def check_handoff(conversation: Conversation, email: str, phone: str) -> None:
    """Raise Refused (rate_limited) if one more hand-off from this conversation, or from this
    email address or phone number to the shop, would pass its hourly limit (a query each;
    synchronous)."""
    recent = Handoff.objects.filter(created__gte=timezone.now() - timedelta(hours=1))
    per_conversation = settings.HANDOFFS_PER_CONVERSATION_PER_HOUR
    if per_conversation > 0 and (
        recent.filter(conversation=conversation).count() >= per_conversation
    ):
        raise Refused(ErrorCode.RATE_LIMITED, "handoffs_conversation")
    per_address = settings.HANDOFFS_PER_ADDRESS_PER_HOUR
    for address in (email, phone):
        if per_address > 0 and address:
            # The same address however it is written: an email in any case, a phone number
            # however it is spaced (Handoff.objects.from_address).
            same = recent.filter(conversation__shop_id=conversation.shop_id).from_address(address)
            if same.count() >= per_address:
                raise Refused(ErrorCode.RATE_LIMITED, "handoffs_address")
