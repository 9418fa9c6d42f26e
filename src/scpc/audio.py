"""Audio input: wav.scp entries (paths or Kaldi-style pipes) to float32 in [-1, 1] at 16 kHz."""

from __future__ import annotations

import io
import os
import struct
import subprocess

import numpy as np
import soundfile as sf
import soxr

from scpc.errors import ScpcError

SAMPLE_RATE = 16000


def is_pipe(entry: str) -> bool:
    """Kaldi's extended filename: a command whose stdout is the audio, ending in '|'."""
    return entry.rstrip().endswith("|")


def _open(entry: str) -> tuple[str, io.BytesIO | str]:
    """A name for messages and something soundfile can read."""
    if is_pipe(entry):
        cmd = entry.rstrip()[:-1]
        proc = subprocess.run(cmd, shell=True, capture_output=True)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ScpcError(f"{cmd}: command failed ({err[-1] if err else proc.returncode})")
        return cmd, io.BytesIO(proc.stdout)
    if not os.path.isfile(entry):
        raise ScpcError(f"{entry}: no such audio file")
    return entry, entry


def wav_shortfall(source: io.BytesIO | str) -> tuple[int, int] | None:
    """(declared, present) bytes of a RIFF/RIFX WAVE file's data chunk when the file ends
    before it does (a copy or download cut short), else None. libsndfile reads such a file
    without complaint, giving only the frames that are there. A streamed WAV's unknown size
    (0 or 0xFFFFFFFF, as ``sox ... -t wav -`` writes) is not checked."""
    f = open(source, "rb") if isinstance(source, str) else source
    pos = f.tell()
    try:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            size = struct.unpack(order + "I", chunk[4:])[0]
            if chunk[:4] == b"data":
                if size in (0, 0xFFFFFFFF):
                    return None
                start = f.tell()
                f.seek(0, io.SEEK_END)
                present = f.tell() - start
                return (size, present) if present < size else None
            f.seek(size + (size & 1), io.SEEK_CUR)
    finally:
        if isinstance(source, str):
            f.close()
        else:
            f.seek(pos)


def read_audio(
    entry: str,
    sample_rate: int = SAMPLE_RATE,
    resample: bool = False,
    channel: int | None = None,
    start: float = 0.0,
    end: float | None = None,
) -> np.ndarray:
    """Read one recording as float32 mono in [-1, 1].

    A different sample rate is an error unless ``resample``; multi-channel audio needs an
    explicit ``channel``. ``start``/``end`` (seconds) cut a segment, as Kaldi's segments file.
    """
    name, source = _open(entry)
    short = wav_shortfall(source)
    if short is not None:
        raise ScpcError(
            f"{name}: truncated WAV: its header declares {short[0]} bytes of audio, the file "
            f"holds {short[1]}"
        )
    try:
        with sf.SoundFile(source) as f:
            sr, floating = f.samplerate, f.subtype in ("FLOAT", "DOUBLE")
            # mono decodes straight into a contiguous 1-D array
            x = f.read(dtype="float32", always_2d=f.channels > 1)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ScpcError(f"{name}: not a readable audio file ({e})") from None
    if x.ndim == 1:
        pass
    elif x.shape[1] > 1:
        if channel is None:
            raise ScpcError(f"{name}: has {x.shape[1]} channels; choose one with --channel")
        if not -x.shape[1] <= channel < x.shape[1]:
            raise ScpcError(f"{name}: has no channel {channel} (it has {x.shape[1]})")
        x = np.ascontiguousarray(x[:, channel])
    else:
        x = x[:, 0]
    if sr != sample_rate:
        if not resample:
            raise ScpcError(f"{name}: sample rate is {sr} Hz, expected {sample_rate} Hz")
        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    if start or end is not None:
        lo = int(round(start * sample_rate))
        hi = len(x) if end is None or end < 0 else int(round(end * sample_rate))
        if lo >= len(x) or hi > len(x) + sample_rate // 100:
            raise ScpcError(
                f"{name}: segment {start}-{end} s lies outside its {len(x) / sample_rate:.2f} s"
            )
        x = x[lo:hi]
    if x.size == 0:
        raise ScpcError(f"{name}: contains no samples")
    if floating and not np.isfinite(x).all():  # integer PCM (FLAC, 16-bit WAV) is finite
        raise ScpcError(f"{name}: contains NaN or infinite samples")
    return x


def duration(entry: str) -> float:
    """Duration in seconds; reads only the header of a plain file."""
    name, source = _open(entry)
    try:
        info = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ScpcError(f"{name}: not a readable audio file ({e})") from None
    if info.frames <= 0:
        raise ScpcError(f"{name}: contains no samples")
    return info.frames / info.samplerate
