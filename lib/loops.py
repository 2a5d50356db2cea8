"""
Clients that belong to an event loop. An asyncio client (Claude's HTTP pool, a Redis connection
pool) must only be used from the loop it was made on. daphne runs one loop per process, so in
production this is one client per process; tests run each test in a fresh loop, and a client
cached across loops would reuse connections bound to a closed one.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

Config = TypeVar("Config", bound=Hashable)
Client = TypeVar("Client")


def per_event_loop(make: Callable[[Config], Client]) -> Callable[[Config], Client]:
    """`get(config)`: the client `make(config)` made on the running loop, made again when the
    config changed (tests change settings). Forgotten with its loop."""
    made: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(config: Config) -> Client:
        loop = asyncio.get_running_loop()
        cached = made.get(loop)
        if cached is None or cached[0] != config:
            cached = made[loop] = (config, make(config))
        return cached[1]

    return get
