"""s3prl's on-the-fly features for Mockingjay, TERA and AALBERT (``OnlinePreprocessor`` of
``upstream/baseline/preprocessor.py``), re-implemented in torch (torchaudio does not load here).

Per utterance: the waveform scaled to ``target_level`` dB (RMS over its samples), a centred
STFT (hann window, reflect padding, ``n_fft = 2 (n_freq - 1)``), the power spectrum, then
``feat_type`` "linear" (that spectrum) or "mel" (torchaudio's HTK mel bank, 0 Hz to Nyquist,
no normalisation), ``log(x + eps)``, ``delta`` orders of torchaudio's 5-frame deltas appended,
and per-utterance mean and (unbiased) deviation normalisation with ``cmvn``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from scpc.frontend.base import FramedFrontend
from scpc.frontend.centred import centred_frames, padded_window
from scpc.frontend.config import SAMPLE_RATE, check_input_scale, online_mel_settings
from scpc.masks import frame_mask

DELTA_WINDOW = 5  # torchaudio.functional.compute_deltas' default


def htk_mel_bank(n_freq: int, n_mels: int, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """(n_freq, n_mels) triangular filters equally spaced on the HTK mel scale."""

    def mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    freqs = torch.linspace(0, rate // 2, n_freq)
    mels = torch.linspace(mel(0.0), mel(rate / 2), n_mels + 2)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    width = edges[1:] - edges[:-1]
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0)


def deltas(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """torchaudio's compute_deltas over time of (N, T, C), each utterance's first and last
    frames repeated past its own ends."""
    n = (DELTA_WINDOW - 1) // 2
    t = torch.arange(x.shape[1], device=x.device)[None]  # (1, T)
    last = (lens.clamp(min=1) - 1)[:, None]

    def shifted(k: int) -> torch.Tensor:
        index = torch.minimum((t + k).clamp(min=0), last)  # (N, T)
        return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))

    out = sum(k * (shifted(k) - shifted(-k)) for k in range(1, n + 1))
    return out / (n * (n + 1) * (2 * n + 1) / 3)


class OnlineMelFrontend(FramedFrontend):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        st = online_mel_settings(config)
        self.settings = st
        self.input_scale = check_input_scale(config)
        self.n_fft = 2 * (st["n_freq"] - 1)
        self.frame_length = round(st["win_ms"] * SAMPLE_RATE / 1000)
        self.frame_shift = round(st["hop_ms"] * SAMPLE_RATE / 1000)
        bands = st["n_mels"] if st["feat_type"] == "mel" else st["n_freq"]
        self.feat_size = bands * (1 + st["delta"])
        window = torch.hann_window(self.frame_length, dtype=torch.float64)
        self.register_buffer("window", padded_window(window, self.n_fft), persistent=False)
        self.register_buffer(
            "bank", htk_mel_bank(st["n_freq"], st["n_mels"]).double(), persistent=False
        )

    def num_frames(self, num_samples):
        if isinstance(num_samples, torch.Tensor):
            frames = torch.div(num_samples, self.frame_shift, rounding_mode="floor") + 1
            return torch.where(num_samples <= self.n_fft // 2, 0, frames)
        return 0 if num_samples <= self.n_fft // 2 else num_samples // self.frame_shift + 1

    def features(self, wav, lens, out_lens, num) -> torch.Tensor:
        st = self.settings
        x = wav.double().masked_fill(~frame_mask(lens, wav.shape[1]), 0.0) * self.input_scale
        rms = (x.square().sum(1) / lens.clamp(min=1)).sqrt()
        x = x * ((10 ** (st["target_level"] / 20)) / (rms + 1e-10))[:, None]
        frames = centred_frames(x, lens, num, self.n_fft, self.frame_shift)
        power = torch.fft.rfft(frames * self.window, n=self.n_fft).abs().square()
        feats = power @ self.bank if st["feat_type"] == "mel" else power
        if st["log"]:
            feats = (feats + st["eps"]).log()
        orders = [feats]
        for _ in range(st["delta"]):
            orders.append(deltas(orders[-1], out_lens))
        feats = torch.cat(orders, -1)
        valid = frame_mask(out_lens, num)[..., None]
        if st["cmvn"]:
            count = out_lens.clamp(min=1)[:, None, None]
            mean = feats.masked_fill(~valid, 0.0).sum(1, keepdim=True) / count
            var = ((feats - mean).masked_fill(~valid, 0.0).square()).sum(1, keepdim=True)
            std = (var / (count - 1).clamp(min=1)).sqrt()
            feats = (feats - mean) / (std + st["eps"])
        return feats.masked_fill(~valid, 0.0)
