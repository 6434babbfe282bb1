"""Host memory that stays with the process between training steps.

glibc's ``malloc`` gives large freed blocks back to the kernel (blocks over its mmap threshold
are unmapped, and the top of the heap is trimmed), so on the CPU every training step faults
its large activations and gradients in again, page by page: about 177,000 minor page faults
per step of ``tdsa_vgg16`` at 224 px, batch 8 (700 MB touched anew), 28,000 more for the TDSA
arm than for cross-entropy. :func:`keep_freed_memory` tells ``malloc`` to keep freed memory for
reuse instead; the faults go to zero after the first step. Elsewhere (macOS, Windows, musl) it
changes nothing.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_memory"]

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_SETTINGS = (
    (_M_MMAP_MAX, 0),  # serve large blocks from the heap too, not from mmap (unmapped on free)
    (_M_TRIM_THRESHOLD, 2**31 - 1),  # trim the heap's top only past 2 GiB free (int max)
    (_M_TOP_PAD, 256 << 20),  # grow the heap in steps of 256 MiB
)


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory in the process (see the module docstring).
    Returns whether it applied: ``False`` off Linux or where ``mallopt`` is missing or refuses
    a setting."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS)
