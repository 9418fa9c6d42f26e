"""Spin (Chang, Liu, Glass 2023): speaker-invariant clustering by swapped prediction.

Continued training of an existing upstream: an utterance and a speaker-perturbed copy of it
(:mod:`scpc.objectives.speaker_perturb`) go through the same encoder (all but its last
``trainable_layers`` layers frozen). Each view's final frames are projected (linear, then L2
normalised) and scored against a codebook of ``K`` unit vectors (a bias-free linear layer
whose rows are re-normalised after every optimiser step). Soft targets come from
Sinkhorn-Knopp on a view's own scores (:func:`sinkhorn`: every frame a distribution, every
code an equal share of the batch's frames); each view predicts the *other* view's targets
with ``softmax(scores / temperature)``, and the two cross-entropies are averaged. "accuracy"
is how often the two views' best codes agree. :func:`pnmi` measures the codes against frame
phone labels (phone-normalised mutual information), as Spin logs it on dev.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from scpc.errors import ScpcError


class SpinOutput(NamedTuple):
    loss: torch.Tensor
    accuracy: torch.Tensor
    codes: torch.Tensor  # best code of each frame of the original view (F,)


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, eps: float = 0.02, iters: int = 3) -> torch.Tensor:
    """(B, K) soft assignments of B frames to K codes from scores, SwAV's Sinkhorn-Knopp:
    ``exp(scores / eps)`` scaled alternately so that each code holds 1/K of the mass and each
    frame 1/B; returned with rows summing to 1."""
    q = torch.exp((scores.float() - scores.max()) / eps).T  # (K, B); the shift cancels
    q /= q.sum()
    k, b = q.shape
    for _ in range(iters):
        q /= q.sum(1, keepdim=True) * k
        q /= q.sum(0, keepdim=True) * b
    return (q * b).T


class SpinLoss(nn.Module):
    def __init__(
        self,
        input_size: int,
        codebook_size: int = 256,
        projection_size: int = 256,
        temperature: float = 0.1,
        sinkhorn_eps: float = 0.02,
        sinkhorn_iters: int = 3,
    ) -> None:
        super().__init__()
        if codebook_size < 2 or temperature <= 0 or sinkhorn_eps <= 0 or sinkhorn_iters < 1:
            raise ScpcError("spin: codebook_size >= 2, temperature > 0, eps > 0, iters >= 1")
        self.projection = nn.Linear(input_size, projection_size)
        self.codebook = nn.Linear(projection_size, codebook_size, bias=False)
        self.temperature, self.eps, self.iters = temperature, sinkhorn_eps, sinkhorn_iters
        self.normalize_codebook()

    @torch.no_grad()
    def normalize_codebook(self) -> None:
        self.codebook.weight.copy_(nn.functional.normalize(self.codebook.weight, dim=1))

    def scores(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, C) frames -> (F, K) cosine scores against the codebook."""
        z = nn.functional.normalize(self.projection(frames.float()), dim=-1)
        return self.codebook(z)

    def forward(self, original: torch.Tensor, perturbed: torch.Tensor) -> SpinOutput:
        """Swapped-prediction loss of two views' real frames, each (F, C)."""
        s1, s2 = self.scores(original), self.scores(perturbed)
        q1, q2 = sinkhorn(s1, self.eps, self.iters), sinkhorn(s2, self.eps, self.iters)
        logp1 = torch.log_softmax(s1 / self.temperature, -1)
        logp2 = torch.log_softmax(s2 / self.temperature, -1)
        loss = -0.5 * ((q1 * logp2).sum(-1).mean() + (q2 * logp1).sum(-1).mean())
        codes = s1.argmax(-1)
        agree = (codes == s2.argmax(-1)).float().mean().detach()
        return SpinOutput(loss, agree, codes.detach())


def pnmi(counts: torch.Tensor) -> float:
    """Phone-normalised mutual information I(phone; code) / H(phone) of a (phones, codes)
    table of joint counts."""
    p = counts.double() / counts.sum().clamp(min=1)
    pp, pc = p.sum(1, keepdim=True), p.sum(0, keepdim=True)
    nz = p > 0
    mi = (p[nz] * (p[nz] / (pp @ pc)[nz]).log()).sum()
    h = -(pp[pp > 0] * pp[pp > 0].log()).sum()
    return float(mi / h) if h > 0 else 0.0
