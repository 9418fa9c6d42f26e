"""Seeds derived from values: every trainer draws a batch's randomness from (seed, epoch,
batch, ...), so a resumed run repeats an uninterrupted one exactly."""

from __future__ import annotations

import hashlib


def mix(*parts: object) -> int:
    """A 63-bit seed from any tuple of values (stable across processes and runs)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)
