"""PCA of representations: an exact fit from sampled frames, and the one way to apply it
(fit over a model's outputs on audio: :func:`scpc.pca.fit_on_audio`).

The fit accumulates the mean and scatter matrix in float64, merging batches with Chan et
al.'s pairwise update (no catastrophic cancellation when the mean is large), then takes the
eigendecomposition of the covariance. Applying it is ``(x - mean) @ basis``: the mean is
subtracted and there is no bias (the reference kept a random ``nn.Linear`` bias and never
centred, which distorts cosine distances).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from scpc.errors import ScpcError
from scpc.io import save_torch


@dataclass
class Pca:
    mean: torch.Tensor  # (C,) float64
    basis: torch.Tensor  # (C, k) float64, columns sorted by explained variance
    explained_variance: torch.Tensor  # (k,) float64
    layer: int
    input_size: int
    checkpoint: str
    total_variance: float | None = None  # trace of the covariance; reported, not saved

    @property
    def dim(self) -> int:
        return self.basis.shape[1]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) to (..., k), in float64 then back to ``x``'s dtype."""
        if x.shape[-1] != self.input_size:
            raise ScpcError(f"PCA takes {self.input_size} channels, got {x.shape[-1]}")
        mean, basis = self.mean.to(x.device), self.basis.to(x.device)
        return ((x.double() - mean) @ basis).to(x.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "basis": self.basis,
            "explained_variance": self.explained_variance,
            "layer": self.layer,
            "input_size": self.input_size,
            "checkpoint": self.checkpoint,
        }

    def save(self, path: str | os.PathLike) -> None:
        save_torch(self.to_dict(), path)


def load_pca(path: str | os.PathLike) -> Pca:
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such PCA file") from None
    except Exception as e:  # truncated or foreign files raise many kinds
        raise ScpcError(f"{path}: not a readable PCA file ({type(e).__name__}: {e})") from None
    keys = ("mean", "basis", "explained_variance", "layer", "input_size", "checkpoint")
    if not isinstance(d, dict) or any(k not in d for k in keys):
        raise ScpcError(f"{path}: not a PCA file from scpc-pca (needs {', '.join(keys)})")
    pca = Pca(**{k: d[k] for k in keys})
    if pca.mean.shape != (pca.input_size,) or pca.basis.shape[0] != pca.input_size:
        raise ScpcError(f"{path}: mean/basis shapes do not match input_size {pca.input_size}")
    return pca


class Moments:
    """Streaming count, mean and scatter matrix (sum of outer products of deviations)."""

    def __init__(self, size: int) -> None:
        self.n = 0
        self.mean = torch.zeros(size, dtype=torch.float64)
        self.scatter = torch.zeros(size, size, dtype=torch.float64)

    def add(self, x: torch.Tensor) -> None:
        """Merge a block of frames (n, C)."""
        x = x.detach().to("cpu", torch.float64)
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(0)
        d = x - mb
        total = self.n + nb
        delta = mb - self.mean
        self.scatter += d.T @ d + torch.outer(delta, delta) * (self.n * nb / total)
        self.mean += delta * (nb / total)
        self.n = total


def fit(
    frames: Iterable[torch.Tensor], dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact PCA of the rows of the blocks: mean (C,), basis (C, dim), variances (dim,).

    Components come in decreasing variance (unbiased covariance); each column's sign is
    fixed so that its largest-magnitude entry is positive, so refits agree exactly.
    """
    moments: Moments | None = None
    for block in frames:
        if moments is None:
            moments = Moments(block.shape[-1])
        moments.add(block)
    if moments is None or moments.n == 0:
        raise ScpcError("PCA: no frames to fit on")
    return from_moments(moments, dim)[:3]


def from_moments(
    moments: Moments, dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """As :func:`fit`, plus the total variance (trace of the covariance)."""
    size = moments.mean.numel()
    if not 1 <= dim <= size:
        raise ScpcError(f"PCA: dimension {dim} must lie in [1, {size}] (the representation size)")
    if moments.n <= dim:
        raise ScpcError(
            f"PCA: {moments.n} frames are too few for {dim} components (need more than {dim}); "
            "use more utterances or a larger --frames-per-utt"
        )
    cov = moments.scatter / (moments.n - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(values, descending=True)[:dim]
    values, vectors = values[order].clamp(min=0), vectors[:, order]
    pivot = vectors.abs().argmax(0)
    signs = torch.sign(vectors[pivot, torch.arange(dim)])
    signs[signs == 0] = 1
    return moments.mean.clone(), vectors * signs, values, float(cov.trace())


def sample_frames(x: torch.Tensor, uttid: str, k: int, seed: int) -> torch.Tensor:
    """Up to ``k`` distinct frames of one utterance's (T, C) representation, chosen by a
    generator seeded from (seed, uttid), so the choice does not depend on batching or order."""
    if x.shape[0] <= k:
        return x
    digest = hashlib.sha256(f"{seed}\0{uttid}".encode()).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    idx = torch.randperm(x.shape[0], generator=g)[:k].sort().values
    return x[idx.to(x.device)]


def check_compatible(pca: Pca, layer: int, size: int, checkpoint: str, pca_path: str) -> None:
    """Refuse a PCA fit on another layer, size or model: the projection would be meaningless."""
    if pca.layer != layer:
        raise ScpcError(
            f"{pca_path}: fit on layer {pca.layer}, but representations come from layer {layer}"
            f" (pass --layer {pca.layer})"
        )
    if pca.input_size != size:
        raise ScpcError(
            f"{pca_path}: takes {pca.input_size} channels, but layer {layer} has {size}"
        )
    if pca.checkpoint != checkpoint:
        raise ScpcError(
            f"{pca_path}: fit on a different checkpoint (sha256 {pca.checkpoint[:12]}…)"
        )
