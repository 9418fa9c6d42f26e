"""SPIRAL (Huang et al., ICLR 2022): a perturbed student predicts an EMA teacher, frame by
frame, with an in-utterance contrastive loss.

- Student input: time masking (spans of ``mask_length`` frames, about ``mask_prob`` of the
  frames counting overlaps, wav2vec 2.0's count ``int(prob * T / length + U[0, 1))``) filled
  with a fixed Gaussian vector, channel masking (spans of ``channel_mask_length`` channels,
  ``channel_mask_prob``) set to zero, and optionally additive noise (:class:`NoiseBank`).
- Teacher input: the clean features padded on both sides by ``U{0..max_shift}`` output
  frames' worth of mask-vector frames (position randomisation), its output trimmed back into
  line with the student's. The teacher runs in training mode (dropout, layerdrop:
  "computation noise") unless ``teacher_train_mode`` is false.
- Heads: a projector on both (the teacher's is the EMA copy), and on the student only a
  predictor of ``predictor_layers`` x [Conv1d k5, BatchNorm, ReLU] and a linear layer.
- Loss: InfoNCE of the student's prediction of each frame against the teacher's projection
  of the same frame among ``negatives`` frames drawn from the rest of the same utterance,
  cosine similarity over ``temperature``, on every real frame. A negative equal to the
  positive is ignored. "accuracy" is how often the positive scores highest.
- Teacher: ``m * teacher + (1 - m) * student`` after every optimiser step, ``m`` rising from
  ``ema_start`` to ``ema_end`` along a half cosine over the run (:func:`ema_momentum`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask


class SpiralOutput(NamedTuple):
    loss: torch.Tensor
    accuracy: torch.Tensor


def ema_momentum(step: int, total: int, start: float, end: float) -> float:
    """Momentum at optimiser step ``step`` of ``total``: ``start`` at 0, ``end`` at ``total``."""
    if total <= 0:
        return end
    progress = min(max(step / total, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2


def span_starts(
    n: int, length: int, prob: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Starts of ``int(prob * n / length + U[0, 1))`` spans within ``n`` (wav2vec 2.0)."""
    if n <= length or prob <= 0:
        return torch.zeros(0, dtype=torch.long)
    count = int(prob * n / length + float(torch.rand(1, generator=generator)))
    return torch.randint(0, n - length + 1, (count,), generator=generator)


def span_mask(n: int, total: int, length: int, prob: float, generator) -> torch.Tensor:
    """(total,) bool: spans drawn within the first ``n`` positions."""
    mask = torch.zeros(total, dtype=torch.bool)
    for s in span_starts(n, length, prob, generator).tolist():
        mask[s : s + length] = True
    return mask


def in_utterance_negatives(
    lens: torch.Tensor, count: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every real frame of a (N, T) batch, flattened as ``b * T + t``: its own index
    (F,) and ``count`` indices of other frames of the same utterance (F, count), uniform
    with replacement. Utterances of one frame have no negatives and are left out."""
    own, neg = [], []
    total = int(lens.max()) if len(lens) else 0
    for b, n in enumerate(lens.tolist()):
        if n < 2:
            continue
        t = torch.arange(n)
        r = torch.randint(0, n - 1, (n, count), generator=generator)
        r = r + (r >= t[:, None]).long()  # skip the frame itself
        own.append(b * total + t)
        neg.append(b * total + r)
    if not own:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, count, dtype=torch.long)
    return torch.cat(own), torch.cat(neg)


def contrastive_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    own: torch.Tensor,
    neg: torch.Tensor,
    temperature: float,
) -> SpiralOutput:
    """InfoNCE of flattened (F, C) predictions against their targets among negatives."""
    p = pred.reshape(-1, pred.shape[-1])[own].float()
    y = target.reshape(-1, target.shape[-1]).float()
    candidates = torch.cat([y[own][:, None], y[neg]], 1)  # (F, 1 + K, C)
    logits = torch.cosine_similarity(p[:, None], candidates, dim=-1) / temperature
    same = (candidates[:, 1:] == candidates[:, :1]).all(-1)
    logits[:, 1:] = logits[:, 1:].masked_fill(same, float("-inf"))
    zeros = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    loss = nn.functional.cross_entropy(logits, zeros)
    accuracy = (logits.argmax(-1) == 0).float().mean().detach()
    return SpiralOutput(loss, accuracy)


class NoiseBank:
    """Features of noise recordings, mixed into speech features at a random SNR.

    Mixing adds the two signals' spectra in the linear domain (``exp`` of log features, squared
    for magnitude features): ``log(S + g N)`` with ``g`` setting the ratio of the mean
    energies to the SNR. This is the usual log-add approximation (no cross term).
    """

    def __init__(self, noise_dir: str | Path, frontend_config: dict[str, Any]) -> None:
        from scpc.audio import read_audio
        from scpc.frontend import frontend_from_config

        files = sorted(
            p for p in Path(noise_dir).rglob("*") if p.suffix.lower() in (".wav", ".flac")
        )
        if not files:
            raise ScpcError(f"{noise_dir}: no .wav or .flac noise files")
        fe = frontend_from_config(frontend_config)
        self.log = bool(frontend_config.get("use_log", False))
        self.power = bool(frontend_config.get("use_power", False))
        self.feats = []
        with torch.no_grad():
            for f in files:
                wav = torch.from_numpy(read_audio(str(f)))[None]
                feats, lens = fe(wav, torch.tensor([wav.shape[1]]))
                if int(lens[0]) > 0:
                    self.feats.append(feats[0, : int(lens[0])])
        if not self.feats:
            raise ScpcError(f"{noise_dir}: every noise file is too short for a frame")

    def _energy(self, x: torch.Tensor) -> torch.Tensor:
        e = x.exp() if self.log else x.clamp(min=0)
        return e if self.power else e.square()

    def _back(self, e: torch.Tensor) -> torch.Tensor:
        x = e if self.power else e.sqrt()
        return x.clamp(min=1e-10).log() if self.log else x

    def mix(
        self, x: torch.Tensor, lens: torch.Tensor, ratio: float, snr: Sequence[float], generator
    ) -> torch.Tensor:
        """Copy of (N, T, F) features with noise added to about ``ratio`` of the utterances."""
        out = x.clone()
        for i, n in enumerate(lens.tolist()):
            if n == 0 or float(torch.rand(1, generator=generator)) >= ratio:
                continue
            noise = self.feats[int(torch.randint(len(self.feats), (1,), generator=generator))]
            if noise.shape[1] != x.shape[2]:
                raise ScpcError(
                    f"noise features have {noise.shape[1]} channels, speech {x.shape[2]}"
                )
            start = int(torch.randint(len(noise), (1,), generator=generator))
            idx = (start + torch.arange(n)) % len(noise)  # tiled when shorter
            db = snr[0] + (snr[1] - snr[0]) * float(torch.rand(1, generator=generator))
            s, v = self._energy(x[i, :n]), self._energy(noise[idx].to(x.device, x.dtype))
            gain = s.mean() / v.mean().clamp(min=1e-10) / 10 ** (db / 10)
            out[i, :n] = self._back(s + gain * v)
        return out


class SpiralLoss(nn.Module):
    def __init__(
        self,
        student: nn.Module,
        feat_size: int,
        projection_size: int = 256,
        predictor_layers: int = 2,
        predictor_kernel: int = 5,
        temperature: float = 0.3,
        negatives: int = 100,
        mask_prob: float = 0.5,
        mask_length: int = 20,
        channel_mask_prob: float = 0.4,
        channel_mask_length: int = 20,
        max_shift: int = 16,
        max_shift_ratio: float = 0.5,
        ema_start: float = 0.995,
        ema_end: float = 1.0,
        teacher_train_mode: bool = True,
        mask_seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= ema_start <= ema_end <= 1:
            raise ScpcError(
                f"spiral: need 0 <= ema_start <= ema_end <= 1, got {ema_start}, {ema_end}"
            )
        if temperature <= 0 or negatives < 1:
            raise ScpcError("spiral: temperature must be positive and negatives at least 1")
        size = student.output_size
        self.factor = student.downsampling_factor
        self.projector = nn.Linear(size, projection_size)
        # the teacher: an EMA copy of the student's encoder and projector, never trained
        self.teacher = copy.deepcopy(student)
        self.teacher_projector = copy.deepcopy(self.projector)
        for p in [*self.teacher.parameters(), *self.teacher_projector.parameters()]:
            p.requires_grad_(False)
        layers: list[nn.Module] = []
        for _ in range(predictor_layers):
            layers += [
                nn.Conv1d(
                    projection_size,
                    projection_size,
                    predictor_kernel,
                    padding=predictor_kernel // 2,
                ),
                nn.BatchNorm1d(projection_size),
                nn.ReLU(),
            ]
        self.predictor_convs = nn.Sequential(*layers)
        self.predictor_out = nn.Linear(projection_size, projection_size)
        g = torch.Generator().manual_seed(mask_seed)
        self.register_buffer("mask_vector", torch.randn(feat_size, generator=g))
        self.temperature, self.negatives = temperature, negatives
        self.mask_prob, self.mask_length = mask_prob, mask_length
        self.channel_prob, self.channel_length = channel_mask_prob, channel_mask_length
        self.max_shift, self.max_shift_ratio = max_shift, max_shift_ratio
        self.ema_start, self.ema_end = ema_start, ema_end
        self.teacher_train_mode = teacher_train_mode

    # ------------------------------------------------------------------ inputs
    def student_input(self, x: torch.Tensor, lens: torch.Tensor, generator) -> torch.Tensor:
        """Time spans replaced by the mask vector, channel spans zeroed."""
        n, t, c = x.shape
        time = torch.stack(
            [span_mask(int(k), t, self.mask_length, self.mask_prob, generator) for k in lens]
        )
        chan = torch.stack(
            [span_mask(c, c, self.channel_length, self.channel_prob, generator) for _ in range(n)]
        )
        time, chan = time.to(x.device), chan.to(x.device)
        x = torch.where(time[..., None], self.mask_vector.to(x.dtype), x)
        return x.masked_fill(chan[:, None, :], 0.0) * frame_mask(lens, t)[..., None].to(x.dtype)

    def teacher_input(
        self, x: torch.Tensor, lens: torch.Tensor, generator
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Clean features padded by mask-vector frames on both sides (the same number of
        output frames for the whole batch), their lengths, and the left pad in output frames."""
        shortest = int(lens.min()) // self.factor
        cap = min(self.max_shift, int(self.max_shift_ratio * shortest))
        left, right = (int(torch.randint(0, cap + 1, (1,), generator=generator)) for _ in range(2))
        lp, rp = left * self.factor, right * self.factor
        out = self.mask_vector.to(x.dtype).expand(len(x), x.shape[1] + lp + rp, x.shape[2]).clone()
        for i, n in enumerate(lens.tolist()):
            out[i, lp + n :] = 0
            out[i, lp + n : lp + n + rp] = self.mask_vector.to(x.dtype)
            out[i, lp : lp + n] = x[i, :n]
        return out, lens + lp + rp, left

    # ------------------------------------------------------------------ training
    def predict(self, context: torch.Tensor) -> torch.Tensor:
        z = self.projector(context)
        z = self.predictor_convs(z.transpose(1, 2)).transpose(1, 2)
        return self.predictor_out(z)

    def forward(
        self,
        student_out: torch.Tensor,
        student_lens: torch.Tensor,
        clean: torch.Tensor,
        lens: torch.Tensor,
        generator,
    ) -> SpiralOutput:
        """Loss of the student's output (N, T', C) against the teacher's view of ``clean``."""
        pred = self.predict(student_out)
        padded, plens, left = self.teacher_input(clean, lens, generator)
        was = self.teacher.training
        self.teacher.train(self.teacher_train_mode and self.training)
        with torch.no_grad():
            y, _, _ = self.teacher(padded, plens)
            y = self.teacher_projector(y)[:, left : left + student_out.shape[1]]
        self.teacher.train(was)
        own, neg = in_utterance_negatives(student_lens.cpu(), self.negatives, generator)
        if len(own) == 0:
            zero = pred.sum() * 0
            return SpiralOutput(zero, zero.detach())
        return contrastive_loss(pred, y, own.to(pred.device), neg.to(pred.device), self.temperature)

    @torch.no_grad()
    def update_teacher(self, student: nn.Module, step: int, total: int) -> float:
        """EMA of the student into the teacher after optimiser step ``step``; the momentum."""
        m = ema_momentum(step, total, self.ema_start, self.ema_end)
        pairs = [(self.teacher, student), (self.teacher_projector, self.projector)]
        for teacher, source in pairs:
            for t, s in zip(teacher.parameters(), source.parameters()):
                t.mul_(m).add_(s.detach(), alpha=1 - m)
        return m
