"""Keep glibc's heap from holding on to the memory of freed large tensors.

glibc serves an allocation above its mmap threshold with its own mapping, returned to the
system when freed; but each such free raises the threshold to that size (up to 32 MiB), so the
next large tensors of that size come from the heap, where a freed block stays resident while
anything above it is alive. Training on batches of changing shapes then grows the resident
set step by step: cpc.small on 4 x 2-8 s batches peaked at 2.02 GB, against 1.72 GB with the
threshold fixed at 16 MiB, at the same speed (bench/README.md). Fixing it lower (1 MiB)
saves more memory but costs 12 % in page faults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
DEFAULT_THRESHOLD = 16 << 20


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
