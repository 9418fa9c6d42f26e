"""Windows and filter-bank weights, computed in float64 exactly as pydrobert-speech 0.3.0 does.

pydrobert's STFT computer sums ``|X[k]| * h[k]`` over each filter's truncated half-spectrum
response ``h`` (then doubles it for a real bank), so a bank is a (bins, filters) matrix here.
"""

from __future__ import annotations

import math

import numpy as np


def mel(hz: float) -> float:
    return 1127.0 * np.log(1 + hz / 700.0)


def mel_to_hz(scale: float) -> float:
    return 700.0 * (np.exp(scale / 1127.0) - 1.0)


def window(name: str, width: int) -> np.ndarray:
    """pydrobert's unit-normalised windows (numpy's symmetric windows, rescaled)."""
    denom = max(1, width - 1)
    if name in ("hanning", "hann"):
        return np.hanning(width) / (0.5 * denom)
    if name == "hamming":
        return np.hamming(width) / (0.54 * denom)
    if name in ("blackman", "black"):
        return np.blackman(width) / (0.42 * denom)
    if name in ("bartlett", "triangular", "tri"):
        return np.bartlett(width) / (denom / 2)
    raise ValueError(name)


WINDOWS = ("hanning", "hann", "hamming", "blackman", "black", "bartlett", "triangular", "tri")


def vertices(num_filts: int, low_hz: float, high_hz: float) -> list[float]:
    """Filter edges and centres: ``num_filts + 2`` points uniform on the mel scale."""
    lo, hi = mel(low_hz), mel(high_hz)
    delta = (hi - lo) / (num_filts + 1)
    return [mel_to_hz(lo + delta * i) for i in range(num_filts + 2)]


def bank_matrix(
    kind: str, num_filts: int, low_hz: float, high_hz: float, rate: float, dft_size: int
) -> np.ndarray:
    """(dft_size // 2 + 1, num_filts) half-spectrum responses.

    ``kind`` "fbank": triangles on the mel scale, square-rooted (pydrobert's ``Fbank``);
    "tri": triangles in Hz with mel-spaced vertices (``TriangularOverlappingFilterBank``).
    """
    verts = vertices(num_filts, low_hz, high_hz)
    out = np.zeros((dft_size // 2 + 1, num_filts))
    for f in range(num_filts):
        left, mid, right = verts[f : f + 3]
        left_idx = math.ceil(dft_size * left / rate)
        right_idx = int(dft_size * right / rate)
        for idx in range(left_idx, min(dft_size, right_idx + 1)):
            hz = rate * idx / dft_size
            if kind == "fbank":
                x, lo, c, hi = mel(hz), mel(left), mel(mid), mel(right)
            else:
                x, lo, c, hi = hz, left, mid, right
            val = (x - lo) / (c - lo) if x <= c else (hi - x) / (hi - c)
            # a bin on the top edge can come out a rounding error below zero; pydrobert would
            # take the square root of it (NaN), we take zero
            val = max(val, 0.0)
            out[idx, f] = val**0.5 if kind == "fbank" else val
    return out
