"""Allocator settings for a long-running hub (glibc only; elsewhere a no-op).

Model decodes allocate and free multi-megabyte buffers from several threads. glibc's defaults give each
thread its own arena and raise the mmap threshold as large blocks are freed, so those buffers end up
inside the heaps, where freed space is rarely returned: resident memory crept up for as long as the hub
ran (BENCHMARKS, soak). Two arenas and a fixed mmap threshold hand large blocks back on free.
Must run before the worker threads start (the CLI does it first thing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_malloc(arena_max: int = 2, mmap_threshold: int = 256 * 1024) -> bool:
    """Returns True when the settings were applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    ok = bool(mallopt(M_ARENA_MAX, arena_max)) and bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    if not ok:
        log.debug("mallopt refused the allocator settings")
    return ok
