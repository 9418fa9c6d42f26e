"""Kaldi feature tables (``feats.scp`` pointing into ``.ark`` archives), read through kaldiio,
for commands that take representations either as a directory of per-utterance files or as a
Kaldi ``feats.scp`` (scpc-a2r --format kaldi writes them; Kaldi's and ESPnet's do too)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scpc.errors import ScpcError, crlf_error


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
    with open(path, newline="") as f:
        for n, line in enumerate(f, 1):
            if line.endswith("\r\n"):
                raise crlf_error(path, n)
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


# Kaldi's data dirs say their frame shift in a file named frame_shift (seconds), as
# utils/data/get_frame_shift.sh reads it; without one, Kaldi's feature programs' 10 ms.
FRAME_SHIFT_FILE = "frame_shift"
DEFAULT_FRAME_SHIFT = 0.01


def frame_shift(scp: str | os.PathLike) -> float:
    """Seconds per frame of the features of ``scp``: its directory's ``frame_shift`` file, or
    10 ms."""
    path = Path(scp).parent / FRAME_SHIFT_FILE
    if not path.is_file():
        return DEFAULT_FRAME_SHIFT
    text = path.read_text().strip()
    try:
        value = float(text)
    except ValueError:
        raise ScpcError(f"{path}: expected the frame shift in seconds, got {text!r}") from None
    if not 0 < value < 10:
        raise ScpcError(f"{path}: a frame shift of {value} s is not plausible")
    return value


def num_frames(scp: str | os.PathLike) -> dict[str, int] | None:
    """The ``utt2num_frames`` beside ``scp`` as key -> frames, or None without one."""
    path = Path(scp).parent / "utt2num_frames"
    if not path.is_file():
        return None
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise ScpcError(f"{path}:{n}: expected '<utterance> <frames>'")
            out[parts[0]] = int(parts[1])
    return out
