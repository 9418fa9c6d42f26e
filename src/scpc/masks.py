"""Padded batches: which frames are real, and per-utterance statistics over them.

The one place the package turns lengths into masks: front-ends, encoders, objectives, probes
and the baseline all mask their padding with :func:`frame_mask`, so a padded batch gives what
one utterance at a time gives.
"""

from __future__ import annotations

import torch


def frame_mask(lens: torch.Tensor, total: int) -> torch.Tensor:
    """(N, total) bool: True for the real (unpadded) frames of each utterance."""
    return torch.arange(total, device=lens.device)[None] < lens[:, None]


def mask_padding(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Zero the frames of ``x`` (N, T, C) at or past each length."""
    return x * frame_mask(lens, x.shape[1]).unsqueeze(-1).to(x.dtype)


def utterance_cmvn(
    x: torch.Tensor, lens: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """(N, T, C) standardised per utterance and channel over its first ``lens`` frames (all
    of them when ``lens`` is None); the padding frames stay zero."""
    if lens is None:
        lens = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
    keep = frame_mask(lens.to(x.device), x.shape[1]).unsqueeze(-1).to(x.dtype)
    count = keep.sum(1, keepdim=True).clamp(min=1)
    mean = (x * keep).sum(1, keepdim=True) / count
    var = (((x - mean) * keep) ** 2).sum(1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + eps) * keep
