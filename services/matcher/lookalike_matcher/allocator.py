"""glibc malloc settings for the matcher process.

glibc serves a block of at least M_MMAP_THRESHOLD bytes with its own mmap, unmapped when it is
freed. The threshold starts at 128 KiB but, by default, rises to the size of each such block
freed (up to 32 MiB), and the trim threshold to twice that. That suits a program whose large
blocks live long; the matcher's are mostly short-lived temporaries whose size grows with the
index (search arrays, table merges, regrown arrays), made in several threads. Once the
threshold has risen they come from the threads' arenas, and freed they stay there: in the
soak the matcher's RSS grew ~9 KB per added image, of which Python-level allocations were
~1.4 KB (tracemalloc) and free memory held in the arenas ~5 KB (mallinfo2; bench/README.md,
soak). A fixed threshold stops the rise: larger blocks go back to the system when freed,
smaller ones reuse arena memory as before.

A snapshot merges every table's new codes into its sorted arrays: the old arrays, freed at
once, leave several megabytes free in the arenas. release_free_memory hands that back.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)
# Blocks of a linear scan are 512 KiB (hamming_probe.SCAN_CHUNK) and stay below; at 1M
# images the hash stage's arrays do too, so searches pay no extra page faults (measured).
MMAP_THRESHOLD_BYTES = 1 << 20


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold for this process (call before the index is built). True if
    set; False where an operator's MALLOC_MMAP_THRESHOLD_ already decides, or off glibc."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False  # glibc read it at start-up: the operator's choice stands
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused", extra={"threshold": threshold})
    return done


def release_free_memory() -> None:
    """Give the arenas' free memory back to the system (glibc's malloc_trim; a few
    milliseconds). A no-op off glibc."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)


def _glibc(name: str) -> Any:
    """glibc's function `name`, or None off glibc (musl, macOS: nothing to set)."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None
