"""NeMo's log-mel features (``AudioToMelSpectrogramPreprocessor`` / ``FilterbankFeatures``,
as SPIRAL's NeMo fork computes them), re-implemented in torch.

Per utterance: optionally the waveform divided by its peak (``normalize_time_domain``,
+1e-5), pre-emphasis ``preemph``, a centred STFT (``n_fft`` = the next power of two of the
window unless given, a symmetric window of ``n_window_size`` samples centred in it, reflect
padding), the magnitude to the power ``mag_power``, librosa's Slaney-style mel bank
(``nfilt`` filters, ``lowfreq`` to ``highfreq``, Slaney area normalisation), ``log(x + 2^-24)``
("add" guard; "clamp" takes the max), then per-utterance normalisation ("per_feature": each
channel by its mean and unbiased deviation + 1e-5 over the utterance's ``ceil(S / hop)``
frames; "all_features": one mean and deviation; "none"). Dither is a training-time
augmentation of the original and is not applied.

The original frames a padded batch, so the last frames of a shorter utterance see the
batch's padding, not the reflection of its own end; here each utterance is framed alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from scpc.frontend.base import FramedFrontend
from scpc.frontend.centred import centred_frames, padded_window
from scpc.frontend.config import SAMPLE_RATE, check_input_scale, nemo_mel_settings
from scpc.masks import frame_mask

NORM_EPS = 1e-5  # NeMo's CONSTANT, added to the deviation


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asanyarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_part = f >= 1000.0
    return np.where(
        log_part, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    hz = m * (200.0 / 3)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), hz)


def slaney_mel_bank(n_fft: int, nfilt: int, low: float, high: float, rate: int = SAMPLE_RATE):
    """(nfilt, n_fft // 2 + 1) librosa.filters.mel(htk=False, norm="slaney") weights."""
    freqs = np.linspace(0, rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(low), _hz_to_mel(high), nfilt + 2))
    width = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / width[:-1, None]
    upper = ramps[2:] / width[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2 : nfilt + 2] - edges[:nfilt]))[:, None]


class NemoMelFrontend(FramedFrontend):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        st = nemo_mel_settings(config)
        self.settings = st
        self.input_scale = check_input_scale(config)
        self.frame_length = st["n_window_size"]
        self.frame_shift = st["n_window_stride"]
        self.n_fft = st["n_fft"] or 2 ** math.ceil(math.log2(self.frame_length))
        self.feat_size = st["nfilt"]
        window = {
            "hann": torch.hann_window,
            "hamming": torch.hamming_window,
            "blackman": torch.blackman_window,
            "bartlett": torch.bartlett_window,
        }[st["window"]](self.frame_length, periodic=False, dtype=torch.float64)
        self.register_buffer("window", padded_window(window, self.n_fft), persistent=False)
        bank = slaney_mel_bank(
            self.n_fft, st["nfilt"], st["lowfreq"], st["highfreq"] or SAMPLE_RATE / 2
        )
        self.register_buffer("bank", torch.from_numpy(bank.T.copy()), persistent=False)

    def num_frames(self, num_samples):
        if isinstance(num_samples, torch.Tensor):
            frames = torch.div(
                num_samples + self.frame_shift - 1, self.frame_shift, rounding_mode="floor"
            )
            return torch.where(num_samples <= self.n_fft // 2, 0, frames)
        return 0 if num_samples <= self.n_fft // 2 else -(-num_samples // self.frame_shift)

    def features(self, wav, lens, out_lens, num) -> torch.Tensor:
        st = self.settings
        real = frame_mask(lens, wav.shape[1])
        x = wav.double().masked_fill(~real, 0.0) * self.input_scale
        if st["normalize_time_domain"]:
            x = x / (x.abs().amax(1, keepdim=True) + 1e-5)
        if st["preemph"]:
            x = torch.cat([x[:, :1], x[:, 1:] - st["preemph"] * x[:, :-1]], 1).masked_fill(
                ~real, 0.0
            )
        frames = centred_frames(x, lens, num, self.n_fft, self.frame_shift)
        spect = torch.fft.rfft(frames * self.window, n=self.n_fft).abs()
        if st["mag_power"] != 1.0:
            spect = spect.pow(st["mag_power"])
        feats = spect @ self.bank
        if st["log"]:
            guard = st["log_zero_guard_value"]
            if st["log_zero_guard_type"] == "add":
                feats = (feats + guard).log()
            else:
                feats = feats.clamp(min=guard).log()
        valid = frame_mask(out_lens, num)[..., None]
        if st["normalize"] != "none":
            dims = (1,) if st["normalize"] == "per_feature" else (1, 2)
            per = 1 if st["normalize"] == "per_feature" else feats.shape[2]
            count = out_lens.to(feats.dtype)[:, None, None] * per
            kept = feats.masked_fill(~valid, 0.0)
            mean = kept.sum(dims, keepdim=True) / count
            var = (feats - mean).masked_fill(~valid, 0.0).square().sum(dims, keepdim=True)
            std = (var / (count - 1).clamp(min=1)).sqrt()
            feats = (feats - mean) / (std + NORM_EPS)
        return feats.masked_fill(~valid, 0.0)
