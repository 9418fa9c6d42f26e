"""Frame-level phone alignments (CPC format) and ZeroSpeech ABX item files.

Alignment files hold one line per utterance, ``uttid p1 p2 ...``, one integer phone id per
10 ms frame, as in the CPC paper's LibriSpeech alignments; ``phones.txt`` maps ``symbol id``.
Item files are ZeroSpeech's ``#file onset offset #phone prev-phone next-phone speaker``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from scpc.errors import ScpcError, crlf_error
from scpc.io import atomic_write

SILENCE = "SIL"
# CMUdict's 39 phones without stress, plus silence at id 0.
PHONES: tuple[str, ...] = (SILENCE,) + tuple(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
    "UH UW V W Y Z ZH".split()
)
FRAME_SHIFT = 160  # samples per alignment frame at 16 kHz (10 ms)
ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"


@dataclass(frozen=True)
class Segment:
    """A phone occupying [start, end) seconds."""

    phone: str
    start: float
    end: float


@dataclass(frozen=True)
class Item:
    """One row of an ABX item file."""

    file: str
    onset: float
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str


def num_frames(num_samples: int) -> int:
    """Frames in an utterance: every frame lies wholly inside the audio."""
    return num_samples // FRAME_SHIFT


def segments_to_frames(
    segments: Sequence[Segment], num_samples: int, sample_rate: int = 16000
) -> list[str]:
    """Label each 10 ms frame with the phone covering its centre (silence where none does)."""
    labels = []
    seg_i = 0
    for frame in range(num_frames(num_samples)):
        centre = (frame * FRAME_SHIFT + FRAME_SHIFT / 2) / sample_rate
        while seg_i < len(segments) and segments[seg_i].end <= centre:
            seg_i += 1
        if seg_i < len(segments) and segments[seg_i].start <= centre:
            labels.append(segments[seg_i].phone)
        else:
            labels.append(SILENCE)
    return labels


def segments_to_items(
    file: str, speaker: str, segments: Sequence[Segment], min_duration: float = 0.02
) -> list[Item]:
    """Items for every phone whose neighbours are phones too (not silence)."""
    items = []
    for prev, cur, nxt in zip(segments, segments[1:], segments[2:]):
        if SILENCE in (prev.phone, cur.phone, nxt.phone):
            continue
        if cur.end - cur.start < min_duration:
            continue
        items.append(Item(file, cur.start, cur.end, cur.phone, prev.phone, nxt.phone, speaker))
    return items


def write_phone_table(path: str | os.PathLike, phones: Sequence[str] = PHONES) -> None:
    with atomic_write(path) as f:
        for i, phone in enumerate(phones):
            f.write(f"{phone} {i}\n")


def read_phone_table(path: str | os.PathLike) -> dict[str, int]:
    table: dict[str, int] = {}
    for lineno, fields in _fields(path):
        if len(fields) != 2 or not fields[1].isdigit():
            raise ScpcError(f"{path}:{lineno}: expected 'symbol id', got {' '.join(fields)!r}")
        table[fields[0]] = int(fields[1])
    return table


def write_alignments(
    path: str | os.PathLike, alignments: Iterable[tuple[str, Sequence[int]]]
) -> None:
    with atomic_write(path) as f:
        for utt, ids in alignments:
            f.write(utt + " " + " ".join(map(str, ids)) + "\n")


def read_alignments(path: str | os.PathLike) -> Iterator[tuple[str, list[int]]]:
    for lineno, fields in _fields(path):
        try:
            yield fields[0], [int(x) for x in fields[1:]]
        except ValueError:
            raise ScpcError(f"{path}:{lineno}: frame labels must be integers") from None


def write_items(path: str | os.PathLike, items: Iterable[Item]) -> None:
    with atomic_write(path) as f:
        f.write(ITEM_HEADER + "\n")
        for it in items:
            f.write(
                f"{it.file} {it.onset:.4f} {it.offset:.4f} {it.phone} {it.prev} {it.next} "
                f"{it.speaker}\n"
            )


def read_items(path: str | os.PathLike) -> list[Item]:
    """The items of a ZeroSpeech item file (its header line optional); a malformed line is an
    error naming file:line. Zero-length items are allowed (ABX drops them)."""
    items = []
    for lineno, fields in _fields(path):
        if lineno == 1 and fields[0] == "#file":
            continue
        if len(fields) != 7:
            raise ScpcError(
                f"{path}:{lineno}: expected 7 columns ({ITEM_HEADER}), got {len(fields)}"
            )
        try:
            onset, offset = float(fields[1]), float(fields[2])
        except ValueError:
            raise ScpcError(f"{path}:{lineno}: onset and offset must be numbers") from None
        if not (math.isfinite(onset) and math.isfinite(offset)) or not 0 <= onset <= offset:
            raise ScpcError(f"{path}:{lineno}: need 0 <= onset <= offset, got {onset} {offset}")
        items.append(Item(fields[0], onset, offset, *fields[3:]))
    return items


def _fields(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for lineno, line in enumerate(f, 1):
                if line.endswith("\r\n"):
                    raise crlf_error(path, lineno)
                fields = line.split()
                if fields:
                    yield lineno, fields
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file") from None


__all__ = [
    "FRAME_SHIFT",
    "ITEM_HEADER",
    "Item",
    "PHONES",
    "SILENCE",
    "Segment",
    "num_frames",
    "read_alignments",
    "read_items",
    "read_phone_table",
    "segments_to_frames",
    "segments_to_items",
    "write_alignments",
    "write_items",
    "write_phone_table",
]
