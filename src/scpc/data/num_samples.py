"""Exact sample counts of a data dir's utterances (``utt2num_samples``), for planning batches
without decoding the audio.

Kaldi's ``utt2dur`` is rounded (4 decimals here), so it cannot give the exact frame count a
front-end will produce, which batch plans and bucketing must agree on whether features are
computed on the fly or read from a feature dir. The table is computed once from the audio
headers (soundfile's ``info``: no decoding; a pipe entry is run and decoded) and written into
the data dir beside ``utt2dur``; later runs read it (a million lines in about a second).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scpc.audio import SAMPLE_RATE, is_pipe, read_audio
from scpc.data.datadir import DataDir, audio_entries, read_table, write_table
from scpc.errors import ScpcError
from scpc.progress import progress_bar

TABLE = "utt2num_samples"


def _recording_samples(entry: str) -> int:
    if is_pipe(entry):
        return len(read_audio(entry))
    import soundfile as sf

    if not os.path.isfile(entry):
        raise ScpcError(f"{entry}: no such audio file")
    try:
        info = sf.info(entry)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise ScpcError(f"{entry}: not a readable audio file ({e})") from None
    if info.samplerate != SAMPLE_RATE:
        raise ScpcError(f"{entry}: sample rate is {info.samplerate} Hz, expected {SAMPLE_RATE} Hz")
    return int(info.frames)


def segment_samples(total: int, start: float, end: float | None) -> int:
    """Samples of a segment of a recording of ``total`` samples, as read_audio cuts it."""
    lo = int(round(start * SAMPLE_RATE))
    hi = total if end is None or end < 0 else min(int(round(end * SAMPLE_RATE)), total)
    return max(hi - lo, 0)


def compute_num_samples(d: DataDir) -> dict[str, int]:
    entries = list(audio_entries(d))
    recordings: dict[str, int] = {}
    out = {}
    bar = progress_bar(
        total=len(entries),
        desc=f"{d.path.name}: {TABLE}",
        unit="utt",
        disable=not sys.stderr.isatty(),
    )
    with bar:
        for utt, entry, start, end in entries:
            if entry not in recordings:
                recordings[entry] = _recording_samples(entry)
            out[utt] = segment_samples(recordings[entry], start, end)
            bar.update()
    return out


def num_samples(path: str | os.PathLike) -> dict[str, int]:
    """utt -> samples of a data dir, from its ``utt2num_samples`` (computed and written there
    when missing or stale, i.e. not listing exactly the data dir's utterances)."""
    d = DataDir(Path(path))
    utts = d.utts()
    if d.has(TABLE):
        table = read_table(d.file(TABLE))
        if list(table) == utts:
            try:
                return {u: int(v) for u, v in table.items()}
            except ValueError:
                raise ScpcError(f"{d.file(TABLE)}: sample counts must be integers") from None
    counts = compute_num_samples(d)
    counts = {u: counts[u] for u in utts}
    try:
        write_table(d.file(TABLE), {u: str(n) for u, n in counts.items()})
    except OSError:  # a read-only corpus: computed again next time
        pass
    return counts
