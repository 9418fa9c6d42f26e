"""Turning a base voice into a pseudo-speaker: formant shift, channel tilt, level, dither."""

from __future__ import annotations

import numpy as np
import soxr

from scpc.data.alignment import Segment

from .plan import SAMPLE_RATE, Rendering
from .tts import Synthesis


def shape(s: Synthesis, r: Rendering) -> tuple[np.ndarray, list[Segment]]:
    """Apply the speaker's voice and channel; returns float samples at 16 kHz and phone times."""
    a = r.speaker.formant
    # Playing the samples back a times faster scales every frequency (formants, pitch) by a.
    x = soxr.resample(s.samples, s.sample_rate * a, SAMPLE_RATE, quality="VHQ")
    segments = [Segment(g.phone, g.start / a, g.end / a) for g in s.segments]
    duration = len(x) / SAMPLE_RATE
    segments = [
        Segment(g.phone, g.start, min(g.end, duration)) for g in segments if g.start < duration
    ]
    x = x + r.speaker.tilt * np.concatenate([[0.0], x[:-1]])
    return x, segments


def to_int16(x: np.ndarray, peak_db: float, rng: np.random.Generator) -> np.ndarray:
    """Scale to a peak level and quantise with triangular dither (no digital silence)."""
    peak = np.max(np.abs(x))
    if peak > 0:
        x = x * (10 ** (peak_db / 20) * 32767 / peak)
    dither = rng.uniform(-0.5, 0.5, x.shape) + rng.uniform(-0.5, 0.5, x.shape)
    return np.clip(np.round(x + dither), -32768, 32767).astype(np.int16)


def noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Background noise for Speech Commands' _background_noise_: coloured noise or mains hum."""
    n = int(seconds * SAMPLE_RATE)
    white = rng.standard_normal(n)
    if kind == "white_noise":
        x = white
    elif kind in ("pink_noise", "brown_noise"):
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = f[1]
        spectrum /= np.sqrt(f) if kind == "pink_noise" else f
        x = np.fft.irfft(spectrum, n)
    elif kind == "mains_hum":
        t = np.arange(n) / SAMPLE_RATE
        x = sum(
            np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3, 5)
        )
        x = x + 0.05 * white
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return to_int16(x, -20.0, rng)
