"""Building blocks of the utterance-level SUPERB heads: masked pooling, TDNN, x-vector,
AM-softmax and SUPERB's ``UtteranceLevel`` classifier.

Every block takes padded ``(B, T, C)`` frames with ``lens`` (B,) valid frames and ignores
the padding, so a padded batch gives what one utterance at a time gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scpc.masks import frame_mask

# (context, dilation) of the five frame layers of the x-vector (Snyder et al. 2018; s3prl)
XVECTOR_LAYERS: tuple[tuple[int, int], ...] = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))


def mean_pool(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, C) float32: the mean over the first ``lens[b]`` frames."""
    x = x.float()  # sums of many half-precision frames overflow
    mask = frame_mask(lens, x.shape[1]).unsqueeze(-1).to(x.dtype)
    count = lens.clamp_min(1).to(x.dtype).unsqueeze(-1)
    return (x * mask).sum(1) / count


def stats_pool(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, 2C): mean and standard deviation over the valid frames.

    The deviation is the unbiased one (torch.std, as s3prl's statistics pooling); one valid
    frame gives 0 rather than NaN.
    """
    x = x.float()  # squares of half-precision frames overflow
    mask = frame_mask(lens, x.shape[1]).unsqueeze(-1).to(x.dtype)
    mean = mean_pool(x, lens)
    centred = (x - mean.unsqueeze(1)) * mask
    denom = (lens - 1).clamp_min(1).to(x.dtype).unsqueeze(-1)
    # clamped before the root: the gradient of sqrt at 0 is infinite
    std = ((centred**2).sum(1) / denom).clamp_min(1e-10).sqrt()
    return torch.cat([mean, std], dim=-1)


class UtteranceClassifier(nn.Module):
    """SUPERB's KS/SID/IC/ER head: Linear(in -> projector_dim), mean pooling over the valid
    frames, Linear -> classes. No non-linearity, as in s3prl's ``UtteranceLevel``.
    ``projector_dim=None`` leaves out the projector: the legacy linear utterance probe."""

    def __init__(self, input_dim: int, num_classes: int, projector_dim: int | None = 256) -> None:
        super().__init__()
        self.projector = (
            nn.Identity() if projector_dim is None else nn.Linear(input_dim, projector_dim)
        )
        self.output = nn.Linear(projector_dim or input_dim, num_classes)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return self.output(mean_pool(self.projector(feats), lens))


class TDNN(nn.Module):
    """One time-delay layer: an affine map of ``context`` frames ``dilation`` apart, then ReLU.
    ``T`` frames in, ``T - dilation * (context - 1)`` out (no padding), frame ``t`` out seeing
    frames ``t .. t + dilation * (context - 1)`` in."""

    def __init__(self, input_dim: int, output_dim: int, context: int, dilation: int) -> None:
        super().__init__()
        self.context, self.dilation = context, dilation
        self.conv = nn.Conv1d(input_dim, output_dim, context, dilation=dilation)

    @property
    def shrink(self) -> int:
        return self.dilation * (self.context - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)


class XVector(nn.Module):
    """s3prl's SUPERB ASV model (``XVector`` + ``SP`` + ``UtteranceExtractor``):
    Linear(in -> hidden), five TDNN layers (the last to ``agg_dim``), statistics pooling,
    then the segment layers. ``embed`` (segment layer 1 + ReLU) is the x-vector that is
    scored; ``forward`` adds segment layer 2 + ReLU, the input of the training loss."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 512,
        agg_dim: int = 1500,
        embed_dim: int = 512,
        layers: Sequence[tuple[int, int]] = XVECTOR_LAYERS,
    ) -> None:
        super().__init__()
        self.connector = nn.Linear(input_dim, hidden_dim)
        dims = [hidden_dim] * len(layers) + [agg_dim]
        self.frames = nn.Sequential(
            *(TDNN(dims[i], dims[i + 1], c, d) for i, (c, d) in enumerate(layers))
        )
        self.shrink = sum(layer.shrink for layer in self.frames)
        self.segment1 = nn.Linear(2 * agg_dim, embed_dim)
        self.segment2 = nn.Linear(embed_dim, embed_dim)

    @property
    def receptive_field(self) -> int:
        """Input frames behind one output frame of the TDNN stack."""
        return self.shrink + 1

    def frame_outputs(
        self, feats: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TDNN outputs (B, T', agg_dim) and their valid lengths: frame ``t`` is valid when its
        whole receptive field lies inside the utterance (at least one frame per utterance)."""
        # an utterance shorter than the receptive field gets one output frame, which sees
        # zero frames past its end whatever the batch's padding holds
        feats = feats * frame_mask(lens, feats.shape[1]).unsqueeze(-1).to(feats.dtype)
        short = self.receptive_field - feats.shape[1]
        if short > 0:
            feats = F.pad(feats, (0, 0, 0, short))
        out = self.frames(self.connector(feats))
        return out, (lens - self.shrink).clamp(1, out.shape[1])

    def embed(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        out, out_lens = self.frame_outputs(feats, lens)
        return F.relu(self.segment1(stats_pool(out, out_lens)))

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return F.relu(self.segment2(self.embed(feats, lens)))


class AMSoftmax(nn.Module):
    """Additive-margin softmax (Wang et al. 2018): logits ``scale * (cos(x, w_j) - margin *
    [j == target])`` with length-normalised ``x`` and class weights, then cross-entropy."""

    def __init__(
        self, input_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.4
    ) -> None:
        super().__init__()
        self.scale, self.margin = scale, margin
        self.weight = nn.Parameter(torch.empty(num_classes, input_dim))
        nn.init.xavier_normal_(self.weight)

    def logits(self, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """(B, classes); with ``target`` the margin is taken off the target class only."""
        cos = F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T
        if target is not None:
            cos = cos - self.margin * F.one_hot(target, cos.shape[-1]).to(cos.dtype)
        return self.scale * cos

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(x, target), target)
