"""TERA, Mockingjay and AALBERT: L1 reconstruction of altered feature frames.

Alterations of the (per-utterance CMVN'd) input, as s3prl's ``pretrain/tera``:

- time: ``round(proportion * T / consecutive)`` blocks of ``consecutive`` frames start at
  distinct random frames (blocks may overlap); per utterance one policy is drawn with
  probabilities ``time_mask_policy``: zero the blocks, replace them with as many other
  random blocks of the same utterance, or leave them unchanged (the model must still
  reconstruct them: BERT's 80/10/10);
- frequency: one band of channels of width uniform in ``[0, freq_mask_max * C]`` zeroed over
  the whole utterance;
- magnitude: with probability ``noise_prob`` per batch, Gaussian noise of std ``noise_std``
  added to every input frame.

The loss is the L1 (or MSE) distance between a head's prediction and the unaltered
features on the altered cells: the frames of time blocks (every channel) and the channels
of the band (every frame). Noise alone marks no cell, as in s3prl. The head is TERA's:
Linear, GELU, LayerNorm, Linear to the feature size. The reported "accuracy" is the
fraction of the target's L1 (or squared) mass the prediction explains,
``1 - sum |pred - target| / sum |target|`` over the altered cells: 0 for predicting the
(CMVN) mean, 1 for a perfect reconstruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask


class ReconstructionOutput(NamedTuple):
    loss: torch.Tensor
    accuracy: torch.Tensor
    altered_fraction: torch.Tensor


def time_alteration(
    x: torch.Tensor,
    lens: torch.Tensor,
    proportion: float,
    consecutive: int,
    policy: Sequence[float] = (0.8, 0.1, 0.1),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Altered copy of ``x`` (N, T, C) and the (N, T) frames to reconstruct."""
    out = x.clone()
    frames = torch.zeros(x.shape[:2], dtype=torch.bool)
    cum = torch.tensor(policy, dtype=torch.float64).cumsum(0)
    for i, n in enumerate(lens.tolist()):
        blocks = round(n * proportion / consecutive)
        if blocks == 0 or n <= consecutive:
            continue
        starts = torch.randperm(n - consecutive, generator=generator)[:blocks]
        idx = (starts[:, None] + torch.arange(consecutive)).reshape(-1)
        frames[i, idx] = True
        draw = float(torch.rand(1, generator=generator))
        if draw < cum[0]:
            out[i, idx.to(x.device)] = 0
        elif draw < cum[1]:
            src = torch.randperm(n - consecutive, generator=generator)[: len(starts)]
            src_idx = (src[:, None] + torch.arange(consecutive)).reshape(-1)
            out[i, idx.to(x.device)] = x[i, src_idx.to(x.device)]
    return out, frames.to(x.device)


def freq_alteration(
    x: torch.Tensor, lens: torch.Tensor, max_fraction: float, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy of ``x`` with one band of channels zeroed per utterance; the (N, C) band."""
    n, _, c = x.shape
    band = torch.zeros(n, c, dtype=torch.bool)
    widest = int(max_fraction * c)
    for i in range(n):
        width = int(torch.randint(0, widest + 1, (1,), generator=generator))
        start = int(torch.randint(0, c - width + 1, (1,), generator=generator))
        band[i, start : start + width] = True
    band = band.to(x.device)
    return x.masked_fill(band[:, None, :], 0.0), band


class ReconstructionLoss(nn.Module):
    def __init__(
        self,
        feat_size: int,
        context_size: int,
        time_mask_proportion: float = 0.15,
        time_mask_consecutive: int = 7,
        time_mask_policy: Sequence[float] = (0.8, 0.1, 0.1),
        freq_mask_max: float = 0.2,
        noise_prob: float = 0.0,
        noise_std: float = 0.2,
        loss: str = "l1",
    ) -> None:
        super().__init__()
        if len(time_mask_policy) != 3 or abs(sum(time_mask_policy) - 1) > 1e-6:
            raise ScpcError(f"time_mask_policy must be 3 probabilities, got {time_mask_policy}")
        if not 0 <= time_mask_proportion < 1 or time_mask_consecutive < 1:
            raise ScpcError("reconstruction: time_mask_proportion in [0, 1), consecutive >= 1")
        if not 0 <= freq_mask_max <= 1 or not 0 <= noise_prob <= 1:
            raise ScpcError("reconstruction: freq_mask_max and noise_prob lie in [0, 1]")
        if time_mask_proportion == 0 and freq_mask_max == 0:
            raise ScpcError("reconstruction: no time and no frequency alteration: nothing to learn")
        if loss not in ("l1", "mse"):
            raise ScpcError(f"reconstruction: unknown loss {loss!r} (l1 or mse)")
        self.proportion, self.consecutive = time_mask_proportion, time_mask_consecutive
        self.policy, self.freq_max = tuple(time_mask_policy), freq_mask_max
        self.noise_prob, self.noise_std, self.kind = noise_prob, noise_std, loss
        self.head = nn.Sequential(
            nn.Linear(context_size, context_size),
            nn.GELU(),
            nn.LayerNorm(context_size),
            nn.Linear(context_size, feat_size),
        )

    def alter(
        self, x: torch.Tensor, lens: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The altered input and the (N, T, C) cells to reconstruct (real frames only)."""
        real = frame_mask(lens, x.shape[1])
        cells = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
        if self.proportion > 0:
            x, frames = time_alteration(
                x,
                lens=lens,
                proportion=self.proportion,
                consecutive=self.consecutive,
                policy=self.policy,
                generator=generator,
            )
            cells |= frames[..., None]
        if self.freq_max > 0:
            x, band = freq_alteration(x, lens, self.freq_max, generator)
            cells |= band[:, None, :]
        if self.noise_prob > 0 and float(torch.rand(1, generator=generator)) < self.noise_prob:
            noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
            x = x + noise * self.noise_std * real[..., None].to(x.dtype)
        return x, cells & real[..., None]

    def forward(
        self, target: torch.Tensor, context: torch.Tensor, cells: torch.Tensor
    ) -> ReconstructionOutput:
        """Loss of the head's prediction from ``context`` (N, T, C') against ``target``
        (N, T, F) on ``cells``."""
        pred = self.head(context).float()
        target = target.float()
        if not cells.any():
            zero = pred.sum() * 0
            return ReconstructionOutput(zero, zero.detach(), zero.detach())
        p, t = pred[cells], target[cells]
        diff, ref = (p - t).abs(), t.abs()
        if self.kind == "mse":
            diff, ref = diff.square(), ref.square()
        loss = diff.mean()
        explained = 1 - diff.sum().detach() / ref.sum().clamp(min=1e-8)
        return ReconstructionOutput(loss, explained, cells.float().mean().detach())
