"""
A per-key sliding-window counter for plain (sync) code such as Django views: how many times a key
(say an address) was hit in the last `window` seconds, this hit included. In Redis when REDIS_URL
is set, shared by every server process (the same sorted-set log under the same prefix as the
chat's limits, widget/chat/limits.py, whose counters are async and belong to the chat); otherwise
in this process's memory. When Redis fails it returns None and the caller lets the request
through: a broken limiter must not take a page down.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections import deque

from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "shopbot:limits:"

_lock = threading.Lock()
_windows: dict[str, deque[float]] = {}


@functools.lru_cache(maxsize=4)
def _redis(url: str):
    import redis

    # Short timeouts: a limiter that hangs would hang the page.
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def _hit_memory(key: str, window: float, now: float) -> int:
    global _windows
    with _lock:
        if len(_windows) > 10_000:  # forget idle keys now and then
            _windows = {k: v for k, v in _windows.items() if v and v[-1] > now - window}
        times = _windows.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        times.append(now)
        return len(times)


def hit(key: str, window: float = 60) -> int | None:
    """Count a hit on `key`; the hits in the last `window` seconds, or None if unknown."""
    now = time.time()
    if not settings.REDIS_URL:
        return _hit_memory(key, window, now)
    full = f"{KEY_PREFIX}{key}"
    try:
        with _redis(settings.REDIS_URL).pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(full, "-inf", now - window)
            pipe.zadd(full, {uuid.uuid4().hex: now})
            pipe.zcard(full)
            pipe.expire(full, int(window) + 1)
            _, _, count, _ = pipe.execute()
    except Exception:
        logger.warning("Rate limit unavailable, letting the request through", exc_info=True)
        return None
    return int(count)


def reset_memory() -> None:
    """Forget the in-memory counts (tests)."""
    with _lock:
        _windows.clear()
