"""Speaker perturbation for Spin, in numpy and soxr (Spin and ContentVec use Praat's "change
gender"; Praat is not needed here).

- :func:`pitch_formant_shift` moves the pitch by one ratio and the formants (the spectral
  envelope) by another: the signal is pitch-shifted as a whole (phase-vocoder time stretch,
  then soxr resampling back to the original duration: harmonics and envelope both move),
  then each STFT frame's own cepstrally smoothed envelope is divided out and the original
  frame's envelope, warped along frequency by the formant ratio, is put in its place.
- :func:`random_eq` is Spin's 10-band parametric equaliser: a low shelf, peaking bands and a
  high shelf (RBJ biquads) at log-spaced centres from 60 to 7,600 Hz, Q log-uniform in
  [2, 5], gains uniform in +-12 dB, applied as the product of their frequency responses.
- :func:`perturb_speaker` draws Spin's ratios (formant U[1, 1.4], pitch U[1, 2], each inverted
  with probability 0.5), applies both and clips to [-1, 1]. Praat's pitch-range change (it
  needs a pitch tracker) is left out.
"""

from __future__ import annotations

import math

import numpy as np

SR = 16000
N_FFT, HOP = 1024, 256
LIFTER = 30  # cepstral coefficients kept for the envelope (quefrency < ~2 ms at 16 kHz)


def _window() -> np.ndarray:
    return np.hanning(N_FFT + 1)[:-1]


def stft(x: np.ndarray) -> np.ndarray:
    """(frames, N_FFT // 2 + 1) of a signal zero-padded by N_FFT // 2 on both sides."""
    pad = np.pad(x, N_FFT // 2)
    n = 1 + max(0, (len(pad) - N_FFT) // HOP)
    idx = np.arange(N_FFT)[None] + HOP * np.arange(n)[:, None]
    return np.fft.rfft(pad[idx] * _window(), axis=1)


def istft(spec: np.ndarray, length: int) -> np.ndarray:
    """Weighted overlap-add inverse of :func:`stft`, ``length`` samples."""
    frames = np.fft.irfft(spec, N_FFT, axis=1) * _window()
    total = N_FFT + HOP * (len(frames) - 1)
    out, norm = np.zeros(total), np.zeros(total)
    for i, f in enumerate(frames):
        out[i * HOP : i * HOP + N_FFT] += f
        norm[i * HOP : i * HOP + N_FFT] += _window() ** 2
    out = out / np.maximum(norm, 1e-8)
    out = out[N_FFT // 2 : N_FFT // 2 + length]
    return np.pad(out, (0, length - len(out)))


def envelope(spec: np.ndarray) -> np.ndarray:
    """Cepstrally smoothed magnitude envelope of each frame."""
    ceps = np.fft.irfft(np.log(np.abs(spec) + 1e-8), N_FFT, axis=1)
    ceps[:, LIFTER : N_FFT - LIFTER + 1] = 0
    return np.exp(np.fft.rfft(ceps, axis=1).real)


def time_stretch(x: np.ndarray, rate: float) -> np.ndarray:
    """Phase vocoder: ``len(x) * rate`` samples, same frequencies."""
    spec = stft(x)
    steps = np.arange(0, len(spec) - 1, 1 / rate)
    advance = 2 * np.pi * HOP * np.arange(spec.shape[1]) / N_FFT
    phase = np.angle(spec[0])
    out = np.empty((len(steps), spec.shape[1]), dtype=complex)
    for t, s in enumerate(steps):
        i, frac = int(s), s - int(s)
        mag = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
        out[t] = mag * np.exp(1j * phase)
        delta = np.angle(spec[i + 1]) - np.angle(spec[i]) - advance
        phase = phase + advance + delta - 2 * np.pi * np.round(delta / (2 * np.pi))
    return istft(out, int(round(len(x) * rate)))


def pitch_formant_shift(
    x: np.ndarray, pitch_ratio: float, formant_ratio: float, sr: int = SR
) -> np.ndarray:
    """``x`` with its pitch times ``pitch_ratio`` and its formants times ``formant_ratio``."""
    import soxr

    x = np.asarray(x, dtype=np.float64)
    if len(x) < N_FFT:
        return x.copy()
    shifted = x
    if pitch_ratio != 1.0:
        stretched = time_stretch(x, pitch_ratio)
        shifted = soxr.resample(stretched, sr * pitch_ratio, sr)[: len(x)]
        shifted = np.pad(shifted, (0, len(x) - len(shifted)))
    spec_x, spec_y = stft(x), stft(shifted)
    bins = np.arange(spec_x.shape[1], dtype=np.float64)
    env_x = envelope(spec_x)
    # the envelope moved up by the ratio: the new envelope at bin k is the old one at k / ratio
    target = np.stack([np.interp(bins / formant_ratio, bins, e) for e in env_x])
    return istft(spec_y / envelope(spec_y) * target, len(x))


def eq_response(
    centres: np.ndarray, gains_db: np.ndarray, qs: np.ndarray, freqs: np.ndarray, sr: int = SR
) -> np.ndarray:
    """Complex response at ``freqs`` (Hz) of a low shelf at ``centres[0]``, peaking bands, and
    a high shelf at ``centres[-1]`` (RBJ audio-EQ cookbook biquads)."""
    z = np.exp(-1j * 2 * np.pi * freqs / sr)
    total = np.ones_like(z)
    for i, (f0, g, q) in enumerate(zip(centres, gains_db, qs)):
        a = 10 ** (g / 40)
        w0 = 2 * np.pi * f0 / sr
        alpha = np.sin(w0) / (2 * q)
        cw = np.cos(w0)
        if i == 0 or i == len(centres) - 1:
            sa = 2 * np.sqrt(a) * alpha
            sign = 1 if i == 0 else -1  # low shelf, high shelf
            b = [
                a * ((a + 1) - sign * (a - 1) * cw + sa),
                sign * 2 * a * ((a - 1) - sign * (a + 1) * cw),
                a * ((a + 1) - sign * (a - 1) * cw - sa),
            ]
            den = [
                (a + 1) + sign * (a - 1) * cw + sa,
                -sign * 2 * ((a - 1) + sign * (a + 1) * cw),
                (a + 1) + sign * (a - 1) * cw - sa,
            ]
        else:
            b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
            den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
        total = total * (b[0] + b[1] * z + b[2] * z**2) / (den[0] + den[1] * z + den[2] * z**2)
    return total


def random_eq(
    x: np.ndarray,
    rng: np.random.Generator,
    bands: int = 10,
    gain_db: float = 12.0,
    q_range: tuple[float, float] = (2.0, 5.0),
    sr: int = SR,
) -> np.ndarray:
    """``x`` through a random parametric equaliser (see the module docstring)."""
    centres = np.geomspace(60.0, 7600.0, bands)
    gains = rng.uniform(-gain_db, gain_db, bands)
    qs = np.exp(rng.uniform(math.log(q_range[0]), math.log(q_range[1]), bands))
    freqs = np.fft.rfftfreq(N_FFT, 1 / sr)
    if len(x) < N_FFT:
        return np.asarray(x, dtype=np.float64).copy()
    return istft(stft(x) * eq_response(centres, gains, qs, freqs, sr), len(x))


def draw_ratios(
    rng: np.random.Generator, formant_max: float = 1.4, pitch_max: float = 2.0
) -> tuple[float, float]:
    """(pitch ratio, formant ratio): U[1, max], each inverted with probability 0.5."""
    formant = rng.uniform(1.0, formant_max)
    pitch = rng.uniform(1.0, pitch_max)
    if rng.random() < 0.5:
        formant = 1 / formant
    if rng.random() < 0.5:
        pitch = 1 / pitch
    return pitch, formant


def perturb_speaker(
    x: np.ndarray,
    rng: np.random.Generator,
    formant_max: float = 1.4,
    pitch_max: float = 2.0,
    eq_bands: int = 10,
    eq_gain_db: float = 12.0,
    eq_q: tuple[float, float] = (2.0, 5.0),
) -> np.ndarray:
    """Spin's speaker perturbation of one 16 kHz waveform: float32, same length, in [-1, 1]."""
    pitch, formant = draw_ratios(rng, formant_max, pitch_max)
    y = pitch_formant_shift(x, pitch, formant)
    if eq_bands:
        y = random_eq(y, rng, eq_bands, eq_gain_db, eq_q)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
