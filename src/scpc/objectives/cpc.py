"""CPC's InfoNCE objective: predict future latents from the context, against negatives.

Anchors are frames t in [offset, len - K); for each step k in (gutted, K] the positive is
z[t + k] and the score a dot product with the step's prediction from c[t]. Negatives are M
latent frames drawn uniformly with replacement, either once per batch from every valid
frame (``negatives="batch"``: one (M, C) matrix scores all anchors, the fast choice), once
per utterance from that utterance (``"utterance"``), or for every anchor from every valid
frame of the batch (``"anchor"``: the reference scpc's and CPC_audio's sampling, M gathered
latents per anchor, about 10x slower; with the same generator state it draws exactly the
reference's negatives). A negative may coincide with the positive (probability about
1/frames). Per-term loss: logsumexp([s+, s-_1..M]) - s+; each
utterance's terms are averaged, then the utterances.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask
from scpc.models import CausalSelfAttentionEncoder


class CpcOutput(NamedTuple):
    loss: torch.Tensor
    accuracy: torch.Tensor  # fraction of terms whose positive outscores every negative


def sample_negatives(
    lens: torch.Tensor,
    total: int,
    num: int,
    mode: str,
    offset: int = 0,
    generator: torch.Generator | None = None,
    utt_seeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Indices of negative frames: (num,) flat indices into N*T for "batch" and "anchor",
    (N, num) frame indices per utterance for "utterance"; only frames t with offset <= t < len.

    With ``utt_seeds`` (N,), each utterance's "utterance" negatives come from its own seeded
    generator, so they do not depend on which other utterances share the batch (how
    data-parallel training draws the same negatives as one process)."""
    lo = torch.full_like(lens, offset)
    if (lens <= lo).any():
        raise ScpcError(f"an utterance has no frame past the offset {offset}")
    if mode in ("batch", "anchor"):  # from every valid frame of the batch
        mask = frame_mask(lens, total)
        mask[:, :offset] = False
        pool = mask.flatten().nonzero().squeeze(1)
        pick = torch.randint(len(pool), (num,), generator=generator, device=lens.device)
        return pool[pick]
    if mode == "utterance":
        if utt_seeds is None:
            u = torch.rand(len(lens), num, generator=generator, device=lens.device)
        else:
            u = torch.stack(
                [
                    torch.rand(num, generator=torch.Generator().manual_seed(int(s)))
                    for s in utt_seeds
                ]
            ).to(lens.device)
        return (lo[:, None] + (u * (lens - lo)[:, None]).long()).clamp(max=(lens - 1)[:, None])
    raise ScpcError(f"unknown negative sampling {mode!r} (batch, utterance or anchor)")


class CpcLoss(nn.Module):
    def __init__(
        self,
        latent_size: int,
        context_size: int,
        prediction_steps: int = 12,
        gutted_steps: int = 0,
        negative_samples: int = 128,
        negatives: str = "batch",
        offset: int = 0,
        predictor: str = "ff",
        predictor_width: int | None = None,
        prediction_dropout: float = 0.0,
        averaging_penalty: float = 0.0,
        num_speakers: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= gutted_steps < prediction_steps:
            raise ScpcError(
                f"need 0 <= gutted_steps < prediction_steps, got {gutted_steps} and {prediction_steps}"
            )
        self.K, self.G, self.M = prediction_steps, gutted_steps, negative_samples
        self.negatives, self.offset, self.penalty = negatives, offset, averaging_penalty
        steps = prediction_steps - gutted_steps
        out = steps * latent_size
        if predictor == "ff":
            self.predictor: nn.Module = nn.Linear(context_size, out, bias=False)
        elif predictor == "recur":
            self.predictor = nn.LSTM(context_size, out, batch_first=True)
        elif predictor == "csa":
            self.predictor = nn.ModuleDict(
                {
                    "csa": CausalSelfAttentionEncoder(
                        context_size,
                        1,
                        8 if context_size % 8 == 0 else 1,
                        max_width=predictor_width,
                    ),
                    "out": nn.Linear(context_size, out, bias=False),
                }
            )
        else:
            raise ScpcError(f"unknown CPC predictor {predictor!r} (ff, recur or csa)")
        self.predictor_type = predictor
        self.dropout = nn.Dropout(prediction_dropout)
        # speaker ids count from 1; 0 (a speaker unseen in training) adds nothing
        self.speakers = (
            nn.Embedding(num_speakers + 1, latent_size, padding_idx=0) if num_speakers else None
        )

    def predictions(self, c: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """(N, T, K', C) predictions of the future latents from every context frame."""
        if self.predictor_type == "ff":
            p = self.predictor(c)
        elif self.predictor_type == "recur":
            p, _ = self.predictor(c)
        else:
            p = self.predictor["out"](self.predictor["csa"](c, lens).output)
        return self.dropout(p).unflatten(-1, (self.K - self.G, -1))

    def _anchor_scores(self, preds: torch.Tensor, z: torch.Tensor, neg: torch.Tensor):
        """(N, A, K', M) scores against each anchor's own M negatives (flat indices ``neg``,
        anchor-major from the first anchor past the offset, as the reference draws them)."""
        N, A, steps, C = preds.shape
        first = self.offset
        negs = z.reshape(-1, C)[neg].view(N * (A - first), self.M, C)
        s = torch.bmm(preds[:, first:].reshape(N * (A - first), steps, C), negs.transpose(1, 2))
        s = s.view(N, A - first, steps, self.M)
        return nn.functional.pad(s, (0, 0, 0, 0, first, 0))  # anchors before the offset: unused

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        lens: torch.Tensor,
        speakers: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        utt_seeds: torch.Tensor | None = None,
    ) -> CpcOutput:
        N, T, C = z.shape
        if (lens <= self.offset + self.K).any():
            raise ScpcError(
                f"utterances need more than offset + prediction_steps = {self.offset + self.K} frames"
            )
        if self.speakers is not None:
            if speakers is None:
                raise ScpcError("this CPC loss adds speaker embeddings: pass speaker ids")
            z = z + self.speakers(speakers)[:, None]
        preds = self.predictions(c, lens)[:, : T - self.K]  # anchors t < T - K
        A = preds.shape[1]
        steps = torch.arange(self.G + 1, self.K + 1, device=z.device)
        # positives z[t + k]: (N, A, K', C)
        idx = torch.arange(A, device=z.device)[:, None] + steps[None]
        pos = z[:, idx]
        s_pos = (preds * pos).sum(-1)  # (N, A, K')
        neg = sample_negatives(
            lens,
            total=T,
            num=self.M * N * (A - self.offset) if self.negatives == "anchor" else self.M,
            mode=self.negatives,
            offset=self.offset,
            generator=generator,
            utt_seeds=utt_seeds,
        )
        if self.negatives == "anchor":
            s_neg = self._anchor_scores(preds, z, neg)
        elif self.negatives == "batch":
            s_neg = preds @ z.reshape(N * T, C)[neg].T  # (N, A, K', M)
        else:
            negs = z[torch.arange(N, device=z.device)[:, None], neg]  # (N, M, C)
            s_neg = (preds.reshape(N, A * len(steps), C) @ negs.transpose(1, 2)).reshape(
                N, A, len(steps), self.M
            )
        scores = torch.cat([s_pos.unsqueeze(-1), s_neg], -1)
        terms = torch.logsumexp(scores, -1) - s_pos  # (N, A, K')
        anchor_ok = frame_mask(lens - self.K, A)
        anchor_ok[:, : self.offset] = False
        w = anchor_ok.unsqueeze(-1).to(terms.dtype)
        per_utt = (terms * w).sum((1, 2)) / (w.sum((1, 2)) * len(steps))
        loss = per_utt.mean()
        if self.penalty:
            mean_z = (z * frame_mask(lens, T).unsqueeze(-1)).sum(1) / lens[:, None]
            loss = loss + self.penalty * (mean_z**2).mean()
        correct = (s_pos.unsqueeze(-1) > s_neg).all(-1).to(terms.dtype)
        accuracy = (correct * w).sum() / (w.sum() * len(steps))
        return CpcOutput(loss, accuracy.detach())
