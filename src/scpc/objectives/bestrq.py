"""BEST-RQ (Chiu et al., 2022): predict random-projection codes of masked frames.

Targets: each (stacked) feature frame x, standardised per utterance and channel, is projected by a frozen random matrix P, normalised,
and matched to the nearest of a frozen codebook of unit vectors. Input: spans of ``mask_width``
whole frames, each frame starting a span with probability ``mask_prob``, are replaced by
Gaussian noise (std ``noise_std``). Loss: cross-entropy on the masked frames only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask, utterance_cmvn
from scpc.models.encoders import CausalSelfAttentionEncoder


class BestRqOutput(NamedTuple):
    loss: torch.Tensor
    accuracy: torch.Tensor
    masked_fraction: torch.Tensor


def span_mask(
    lens: torch.Tensor,
    total: int,
    prob: float,
    width: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, T) bool: frames inside spans of ``width`` frames started with probability ``prob``,
    only within each utterance's length."""
    # drawn on the CPU (the trainer's generator lives there), then moved
    starts = (torch.rand(len(lens), total, generator=generator) < prob).to(lens.device)
    # a frame is masked if a span started in the last width frames (including itself)
    counts = torch.nn.functional.conv1d(
        starts.float().unsqueeze(1), torch.ones(1, 1, width, device=lens.device), padding=width - 1
    )[:, 0, :total]
    return (counts > 0) & frame_mask(lens, total)


def standardize(feats: torch.Tensor, lens: torch.Tensor | None, factor: int) -> torch.Tensor:
    """Per-utterance, per-channel zero mean and unit variance over the real frames.

    BEST-RQ quantises normalised features: without this, the large common offset of log
    filter banks dominates every projection and a handful of codes take all frames.
    ``lens`` count frames at the encoder's rate (``factor`` input frames each).
    """
    if lens is None:
        lens = torch.full((feats.shape[0],), feats.shape[1] // factor, device=feats.device)
    return utterance_cmvn(feats, lens * factor)


class BestRqQuantizer(nn.Module):
    def __init__(
        self, input_size: int, codebook_size: int = 8192, codebook_dim: int = 16, seed: int = 0
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        projection = torch.empty(input_size, codebook_dim)
        std = (2.0 / (input_size + codebook_dim)) ** 0.5  # Xavier normal
        projection.normal_(0, std, generator=g)
        codebook = torch.randn(codebook_size, codebook_dim, generator=g)
        self.register_buffer("projection", projection)
        self.register_buffer("codebook", nn.functional.normalize(codebook, dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Code index of every frame of x (..., F)."""
        y = nn.functional.normalize(x @ self.projection, dim=-1)
        return (
            torch.cdist(y.reshape(-1, y.shape[-1]), self.codebook).argmin(-1).reshape(y.shape[:-1])
        )


def stack_frames(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, T, F) to (N, T // factor, F * factor): targets at the encoder's frame rate."""
    N, T, F = x.shape
    T2 = T // factor
    return x[:, : T2 * factor].reshape(N, T2, F * factor)


class BestRqLoss(nn.Module):
    def __init__(
        self,
        feat_size: int,
        context_size: int,
        downsampling_factor: int = 1,
        codebook_size: int = 8192,
        codebook_dim: int = 16,
        mask_prob: float = 0.01,
        mask_width: int = 40,
        noise_std: float = 0.1,
        seed: int = 0,
        predictor: str = "ff",
    ) -> None:
        super().__init__()
        if not 0 < mask_prob < 1 or mask_width < 1:
            raise ScpcError(
                f"BEST-RQ needs 0 < mask_prob < 1 and mask_width >= 1, got {mask_prob}, {mask_width}"
            )
        self.factor, self.prob, self.width, self.noise_std = (
            downsampling_factor,
            mask_prob,
            mask_width,
            noise_std,
        )
        self.quantizer = BestRqQuantizer(
            feat_size * downsampling_factor, codebook_size, codebook_dim, seed
        )
        if predictor not in ("ff", "csa"):
            raise ScpcError(f"unknown BEST-RQ predictor {predictor!r} (ff or csa)")
        # csa: the reference's head, one causal transformer layer (unbounded width) then logits
        self.head_csa = (
            CausalSelfAttentionEncoder(context_size, 1, 8 if context_size % 8 == 0 else 1)
            if predictor == "csa"
            else None
        )
        self.head = nn.Linear(context_size, codebook_size)

    def mask(
        self, feats: torch.Tensor, lens: torch.Tensor, generator: torch.Generator | None = None
    ):
        """Masked copy of the features and the (N, T') mask at the encoder's frame rate.

        Masks are drawn at the encoder's rate and cover whole groups of input frames.
        """
        total = feats.shape[1] // self.factor
        m = span_mask(
            torch.div(lens, self.factor, rounding_mode="floor"),
            total,
            self.prob,
            self.width,
            generator,
        )
        full = m.repeat_interleave(self.factor, 1)
        full = nn.functional.pad(full, (0, feats.shape[1] - full.shape[1]))
        noise = torch.randn(feats.shape, generator=generator).to(feats.device) * self.noise_std
        return torch.where(full.unsqueeze(-1), noise.to(feats.dtype), feats), m

    def forward(
        self,
        feats: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor,
        lens: torch.Tensor | None = None,
    ) -> BestRqOutput:
        """Loss of the context (N, T', C), computed from masked features, against the codes of
        the unmasked features, on the masked frames."""
        targets = self.quantizer(stack_frames(standardize(feats, lens, self.factor), self.factor))[
            :, : context.shape[1]
        ]
        m = mask[:, : context.shape[1]]
        if self.head_csa is not None:
            if lens is None:
                raise ScpcError("the csa BEST-RQ head needs the context lengths")
            context = self.head_csa(context, lens).output
        if not m.any():
            zero = context.sum() * 0
            return BestRqOutput(zero, zero.detach(), zero.detach())
        logits = self.head(context[m])
        loss = nn.functional.cross_entropy(logits, targets[m])
        accuracy = (logits.argmax(-1) == targets[m]).float().mean()
        return BestRqOutput(loss, accuracy.detach(), m.float().mean().detach())
