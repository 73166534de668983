"""Allocator and math-library settings for a long-running hub.

`single_threaded_blas`: numpy's OpenBLAS starts a thread per core whose workers spin while they wait
for work; the hub's parallelism is its own (scheduler lanes, CTranslate2 threads), and on a 2-core
machine under 24 streams that spinning took a quarter of a core (BENCHMARKS). Must run before numpy is
imported; an operator's own OPENBLAS_NUM_THREADS / MKL_NUM_THREADS wins.

`tune_malloc` (glibc only; elsewhere a no-op):
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
import os
import sys

log = logging.getLogger(__name__)

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded_blas() -> bool:
    """Returns True when the setting can still apply (numpy not imported yet)."""
    if "numpy" in sys.modules:
        return False
    for name in BLAS_THREAD_VARS:
        os.environ.setdefault(name, "1")
    return True

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
