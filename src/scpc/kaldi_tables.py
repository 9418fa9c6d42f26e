"""Kaldi feature tables (``feats.scp`` pointing into ``.ark`` archives), read through kaldiio,
for commands that take representations either as a directory of per-utterance files or as a
Kaldi ``feats.scp`` (scpc-a2r --format kaldi writes them; Kaldi's and ESPnet's do too)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scpc.errors import ScpcError


def is_scp(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a Kaldi script file (a file ending in .scp)."""
    return Path(path).suffix == ".scp" and Path(path).is_file()


@dataclass(frozen=True)
class KaldiMatrix:
    """One entry of a feats.scp: its key and where the matrix is (``ark:offset``, a pipe...)."""

    scp: Path
    key: str
    rxspecifier: str

    def __str__(self) -> str:
        return f"{self.scp}[{self.key}]"

    def read(self) -> np.ndarray:
        import kaldiio

        try:
            x = kaldiio.load_mat(self.rxspecifier)
        except Exception as e:  # noqa: BLE001 - a missing or corrupt archive is one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ScpcError(f"{self}: cannot read {self.rxspecifier} ({first})") from None
        if isinstance(x, tuple):  # a wav entry: (rate, samples)
            raise ScpcError(f"{self}: {self.rxspecifier} is audio, not a feature matrix")
        return np.array(x)  # a writable copy (kaldiio may map the archive read-only)


def read_scp(path: str | os.PathLike) -> dict[str, KaldiMatrix]:
    """key -> entry of a feats.scp, in file order; a malformed or repeated key is an error
    naming the line."""
    path = Path(path)
    out: dict[str, KaldiMatrix] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split(maxsplit=1)
            if len(parts) != 2:
                raise ScpcError(f"{path}:{n}: expected '<utterance> <rxspecifier>'")
            if parts[0] in out:
                raise ScpcError(f"{path}:{n}: {parts[0]} appears twice")
            out[parts[0]] = KaldiMatrix(path, parts[0], parts[1].strip())
    if not out:
        raise ScpcError(f"{path}: no entries")
    return out
