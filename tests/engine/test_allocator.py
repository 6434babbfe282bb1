"""keep_freed_memory: freed host memory is reused instead of faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A child process allocates, touches and frees a 48 MB tensor ten times and prints the minor
# page faults of the last nine cycles (the first one faults its pages in either way).
_CHILD = """
import resource, sys, torch
from tdsa.engine.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
t = torch.empty(48 << 20, dtype=torch.uint8); t.fill_(1); del t
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    t = torch.empty(48 << 20, dtype=torch.uint8); t.fill_(1); del t
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[-2], int(out[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_freed_blocks_are_reused_instead_of_faulted_in_again() -> None:
    """Without it, glibc unmaps each freed 48 MB block, so every cycle faults its 12,288 pages
    (4 KiB) in again; with it, the block is reused: nine cycles fault at most two blocks' pages
    (the heap grows once), against nine."""
    applied, kept = _faults("keep")
    _, default = _faults("default")
    pages = (48 << 20) // 4096
    assert applied == "True"
    assert default >= 9 * pages * 0.9
    assert kept <= 2 * pages
