"""Memory a process has freed, given back to the system.

glibc keeps memory that Python, numpy and onnxruntime have freed in its heaps, to reuse it, and
the process's resident size does not go down. `give_back_freed_memory` asks glibc to return what
it can (malloc_trim): the server calls it after its warm-up, whose model loading frees large
buffers, and when the embedding batcher has been idle for a moment after a burst of questions
(faq/embedding.py). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


def give_back_freed_memory() -> bool:
    """glibc's malloc_trim(0), outside the GIL (ctypes releases it); False where there is none."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
