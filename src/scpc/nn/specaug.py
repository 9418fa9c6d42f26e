"""SpecAugment on featurized upstream output, at training time only (as SUPERB's ASR).

Per utterance: a time warp (the frame at a random centre moves by up to ``time_warp_window``
frames, both sides linearly resampled), then ``num_freq_mask`` channel bands and
``num_time_mask`` frame spans set to zero. Widths are drawn uniformly from
``[lo, hi)`` of ``freq_mask_width`` / ``time_mask_width``; a band or span starts uniformly where
it fits. Only each utterance's valid frames are touched. In eval mode it does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# The one place of SpecAugment's defaults: s3prl's ASR config (downstream/asr/config.yaml).
DEFAULTS = {
    "enabled": False,
    "time_warp_window": 5,  # frames; 0: no warp
    "num_time_mask": 2,
    "time_mask_width": [0, 40],  # frames, [lo, hi)
    "num_freq_mask": 4,
    "freq_mask_width": [0, 50],  # channels, [lo, hi)
}


def _range(value: Sequence[int], what: str) -> tuple[int, int]:
    lo, hi = (int(v) for v in value)
    if not 0 <= lo < hi:
        raise ValueError(f"{what} must be [lo, hi) with 0 <= lo < hi, got {list(value)}")
    return lo, hi


class SpecAugment(nn.Module):
    def __init__(
        self,
        time_warp_window: int = 5,
        num_time_mask: int = 2,
        time_mask_width: Sequence[int] = (0, 40),
        num_freq_mask: int = 4,
        freq_mask_width: Sequence[int] = (0, 50),
    ) -> None:
        super().__init__()
        self.time_warp_window = time_warp_window
        self.num_time_mask, self.num_freq_mask = num_time_mask, num_freq_mask
        self.time_mask_width = _range(time_mask_width, "time_mask_width")
        self.freq_mask_width = _range(freq_mask_width, "freq_mask_width")

    def forward(
        self, x: torch.Tensor, lens: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, T, C) features with (B,) valid frames; returns a new tensor (training mode)."""
        if not self.training:
            return x
        out = []
        for i, n in enumerate(lens.tolist()):
            y = x[i, :n]
            if self.time_warp_window > 0:
                y = self.warp(y, generator)
            n_time, time_width, n_freq, freq_width = self.limits(n, x.shape[2])
            y = self.mask(y, 1, n_freq, freq_width, generator)
            y = self.mask(y, 0, n_time, time_width, generator)
            out.append(F.pad(y, (0, 0, 0, x.shape[1] - n)))
        return torch.stack(out) if out else x

    def limits(self, t: int, c: int) -> tuple[int, tuple[int, int], int, tuple[int, int]]:
        """(time masks, their width range, channel masks, their width range) of an utterance
        of ``t`` frames and ``c`` channels: fixed here, relative in the baseline's policy."""
        return self.num_time_mask, self.time_mask_width, self.num_freq_mask, self.freq_mask_width

    def warp(self, y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        t, w = y.shape[0], self.time_warp_window
        if t <= 2 * w + 1:
            return y
        centre = int(torch.randint(w, t - w, (1,), generator=generator))
        moved = centre + int(torch.randint(-w, w + 1, (1,), generator=generator))
        moved = min(max(moved, 1), t - 1)
        left = _resample(y[:centre], moved)
        right = _resample(y[centre:], t - moved)
        return torch.cat([left, right])

    @staticmethod
    def mask(
        y: torch.Tensor,
        dim: int,
        count: int,
        width: tuple[int, int],
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        size = y.shape[dim]
        if count == 0 or size == 0:
            return y
        widths = torch.randint(width[0], width[1], (count,), generator=generator)
        widths = widths.clamp(max=size)
        keep = torch.ones(size, dtype=torch.bool)
        for w in widths.tolist():
            start = int(torch.randint(0, size - w + 1, (1,), generator=generator))
            keep[start : start + w] = False
        keep = keep.to(y.device)
        return y * (keep[:, None] if dim == 0 else keep[None, :]).to(y.dtype)


def _resample(y: torch.Tensor, frames: int) -> torch.Tensor:
    """(T, C) linearly interpolated to (frames, C) along time."""
    z = F.interpolate(y.T[None], size=frames, mode="linear", align_corners=False)
    return z[0].T


def from_config(cfg: dict) -> SpecAugment | None:
    if not cfg.get("enabled"):
        return None
    args = {k: v for k, v in cfg.items() if k != "enabled"}
    return SpecAugment(**args)
