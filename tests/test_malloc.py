"""scpc.malloc: a freed large tensor goes back to the system once the mmap threshold is fixed."""

import subprocess
import sys

import pytest

PROBE = """
import sys
import numpy as np

def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "fixed":
    from scpc.malloc import fix_mmap_threshold
    assert fix_mmap_threshold()
a = np.ones(20 << 20, dtype=np.uint8)
del a  # glibc raises its threshold to 20 MiB: the next such block comes from the heap
b = np.ones(20 << 20, dtype=np.uint8)
pins = [np.ones(1000, dtype=np.uint8) for _ in range(100)]  # small blocks above it
before = resident_mib()
del b
print(round(before - resident_mib()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_fixed_threshold_returns_freed_large_blocks():
    def released(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True
        )
        return int(out.stdout)

    assert released("default") == 0  # the 20 MiB stay resident under the pinned blocks
    assert released("fixed") == 20
