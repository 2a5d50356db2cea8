"""
Per-key counters for limits, in one implementation with two faces: `hit()` and `counters()` for
plain (sync) code such as Django views (the FAQ page's search, faq/pagesearch.py), and
`async_counters()` for the chat (widget/chat/limits.py). Two kinds of count:

- `hit(key, window)`: how many times `key` (say an address) was hit in the last `window` seconds,
  this hit included: a sliding log, so there is no burst at a window's edge.
- Slots (`take_slot`, `touch_slot`, `free_slot`): at most `limit` members (say open sockets) per
  key; a member not touched for `ttl` seconds is forgotten, so the slots of a process that died
  without saying goodbye free themselves.

With REDIS_URL they are counted in Redis, shared by every server process (a sorted set per key,
scored by time, under KEY_PREFIX); otherwise in this process's memory. Each Redis operation is
written once (`_hit_plan`, ...) and run by a sync or an asyncio client. The classes raise when
Redis fails; the callers let the request through (a broken limiter must not take a page or the
chat down): `hit()` does so by returning None.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from django.conf import settings

from lib.loops import per_event_loop

logger = logging.getLogger(__name__)

KEY_PREFIX = "shopbot:limits:"

# A Redis operation: what it queues on a pipeline, and what it makes of the pipeline's results.
Plan = tuple[Callable[[Any], None], Callable[[list], Any]]


# --- In this process's memory ------------------------------------------------------------------


class MemoryCounters:
    """Counters in this process's memory (the limits then hold per server process); safe to use
    from any thread and from async code (a lock held for a few dict operations)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, deque[float]] = {}
        self.slots: dict[str, dict[str, float]] = {}

    def hit(self, key: str, window: float) -> int:
        now = time.time()
        with self.lock:
            if len(self.windows) > 10_000:  # forget idle keys now and then
                self.windows = {k: v for k, v in self.windows.items() if v and v[-1] > now - window}
            times = self.windows.setdefault(key, deque())
            while times and times[0] <= now - window:
                times.popleft()
            times.append(now)
            return len(times)

    def take_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        now = time.time()
        with self.lock:
            slots = {m: t for m, t in self.slots.get(key, {}).items() if t > now - ttl}
            self.slots[key] = slots
            if len(slots) >= limit:
                return False
            slots[member] = now
            return True

    def touch_slot(self, key: str, member: str) -> None:
        with self.lock:
            if member in self.slots.get(key, {}):
                self.slots[key][member] = time.time()

    def free_slot(self, key: str, member: str) -> None:
        with self.lock:
            slots = self.slots.get(key, {})
            slots.pop(member, None)
            if not slots:
                self.slots.pop(key, None)


class AsyncMemoryCounters:
    """The async face of MemoryCounters (nothing in it waits)."""

    def __init__(self, memory: MemoryCounters) -> None:
        self.memory = memory

    async def hit(self, key: str, window: float) -> int:
        return self.memory.hit(key, window)

    async def take_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        return self.memory.take_slot(key, member, limit, ttl)

    async def touch_slot(self, key: str, member: str) -> None:
        self.memory.touch_slot(key, member)

    async def free_slot(self, key: str, member: str) -> None:
        self.memory.free_slot(key, member)


# --- In Redis: each operation written once ------------------------------------------------------


def _hit_plan(key: str, window: float) -> Plan:
    full, now = f"{KEY_PREFIX}{key}", time.time()

    def queue(pipe) -> None:
        pipe.zremrangebyscore(full, "-inf", now - window)
        pipe.zadd(full, {uuid.uuid4().hex: now})
        pipe.zcard(full)
        pipe.expire(full, int(window) + 1)

    return queue, lambda results: int(results[2])


def _take_slot_plan(key: str, member: str, limit: int, ttl: float) -> Plan:
    """Taken if the member fits; a member over the limit is added, counted, then freed
    (`_free_slot_plan`) by the caller."""
    full, now = f"{KEY_PREFIX}{key}", time.time()

    def queue(pipe) -> None:
        pipe.zremrangebyscore(full, "-inf", now - ttl)
        pipe.zadd(full, {member: now})
        pipe.zcard(full)
        pipe.expire(full, int(ttl))

    return queue, lambda results: int(results[2]) <= limit


def _touch_slot_plan(key: str, member: str) -> Plan:
    return lambda pipe: pipe.zadd(f"{KEY_PREFIX}{key}", {member: time.time()}, xx=True), bool


def _free_slot_plan(key: str, member: str) -> Plan:
    return lambda pipe: pipe.zrem(f"{KEY_PREFIX}{key}", member), bool


class RedisCounters:
    """Counters in Redis for sync code, shared by every server process using it."""

    def __init__(self, url: str) -> None:
        import redis

        # Short timeouts: a limiter that hangs would hang the page.
        self.redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    def run(self, plan: Plan) -> Any:
        queue, read = plan
        with self.redis.pipeline(transaction=True) as pipe:
            queue(pipe)
            return read(pipe.execute())

    def hit(self, key: str, window: float) -> int:
        return self.run(_hit_plan(key, window))

    def take_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        taken = self.run(_take_slot_plan(key, member, limit, ttl))
        if not taken:
            self.run(_free_slot_plan(key, member))
        return taken

    def touch_slot(self, key: str, member: str) -> None:
        self.run(_touch_slot_plan(key, member))

    def free_slot(self, key: str, member: str) -> None:
        self.run(_free_slot_plan(key, member))


class AsyncRedisCounters:
    """Counters in Redis for the chat's event loop (redis.asyncio), the same operations."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        # Short timeouts: a limiter that hangs would hang the chat.
        self.redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)

    async def run(self, plan: Plan) -> Any:
        queue, read = plan
        async with self.redis.pipeline(transaction=True) as pipe:
            queue(pipe)
            return read(await pipe.execute())

    async def hit(self, key: str, window: float) -> int:
        return await self.run(_hit_plan(key, window))

    async def take_slot(self, key: str, member: str, limit: int, ttl: float) -> bool:
        taken = await self.run(_take_slot_plan(key, member, limit, ttl))
        if not taken:
            await self.run(_free_slot_plan(key, member))
        return taken

    async def touch_slot(self, key: str, member: str) -> None:
        await self.run(_touch_slot_plan(key, member))

    async def free_slot(self, key: str, member: str) -> None:
        await self.run(_free_slot_plan(key, member))


# --- Which, by the settings ---------------------------------------------------------------------

memory = MemoryCounters()
_sync_redis = functools.lru_cache(maxsize=4)(RedisCounters)
# One asyncio client per event loop, like the Claude client: its connections belong to that loop.
_async_redis = per_event_loop(AsyncRedisCounters)


def counters() -> MemoryCounters | RedisCounters:
    """The sync counters for this process's settings: Redis with REDIS_URL, else memory."""
    return _sync_redis(settings.REDIS_URL) if settings.REDIS_URL else memory


def async_counters() -> AsyncMemoryCounters | AsyncRedisCounters:
    """The async counters for this process's settings (call it on the running event loop)."""
    return _async_redis(settings.REDIS_URL) if settings.REDIS_URL else AsyncMemoryCounters(memory)


def hit(key: str, window: float = 60) -> int | None:
    """Count a hit on `key` from sync code; the hits in the last `window` seconds, or None when
    Redis failed (the caller lets the request through)."""
    try:
        return counters().hit(key, window)
    except Exception:
        logger.warning("Rate limit unavailable, letting the request through", exc_info=True)
        return None


def reset_memory() -> None:
    """Forget the in-memory counts, the chat's and the page's (tests)."""
    global memory
    memory = MemoryCounters()
