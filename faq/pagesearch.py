"""
The limits of the public FAQ page's search (faq/views.py), which anyone can call without a chat
socket: searches per client address per minute (FAQ_SEARCHES_PER_IP_PER_MINUTE, counted by
lib/ratelimit.py, across processes with REDIS_URL) and searches running at once in this
process (FAQ_SEARCH_SLOTS). A visitor over a limit still gets the whole page, without search
results and with one sentence saying why.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from lib import ratelimit
from lib.web import request_client_ip

WINDOW_SECONDS = 60
# How long a search waits for a free slot before the page is sent without results.
SLOT_WAIT_SECONDS = 2.0

TOO_MANY = _(
    "You have searched many times in the last minute; wait a minute and search again, or look "
    "through the questions below."
)
BUSY = _("Search is busy right now; try again in a moment, or look through the questions below.")

_slots = threading.BoundedSemaphore(max(1, settings.FAQ_SEARCH_SLOTS))


def over_address_limit(request: HttpRequest) -> bool:
    """Count this search against its client address; True once it is over the limit."""
    limit = settings.FAQ_SEARCHES_PER_IP_PER_MINUTE
    address = request_client_ip(request)
    if limit <= 0 or not address:
        return False
    count = ratelimit.hit(f"faq-search:{address}", WINDOW_SECONDS)
    return count is not None and count > limit


@contextmanager
def search_slot() -> Iterator[bool]:
    """True (and the slot held until the block ends) if a search may run now."""
    if settings.FAQ_SEARCH_SLOTS <= 0:
        yield True
        return
    got = _slots.acquire(timeout=SLOT_WAIT_SECONDS)
    try:
        yield got
    finally:
        if got:
            _slots.release()
