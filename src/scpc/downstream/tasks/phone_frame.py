"""Legacy s3prl frame-level phone probes: ``phone_linear``, ``phone_1hidden``, ``phone_concat``.

Each upstream frame is classified into the phones of ``phones.txt`` (silence included: 41
classes with the CPC paper's LibriSpeech alignments, 40 on the mini corpus); cross-entropy
over the valid frames; the metric is frame accuracy in percent.

Labels come from ``ali.txt`` (one phone id per 10 ms, frame k covering samples
``[160k, 160k + 160)``) mapped onto the upstream's frame rate by time: upstream frame j spans
``[jR, (j+1)R)`` samples (R = samples per frame) and takes the label of the alignment frame
holding its centre, ``floor((j + 0.5) R / 160)``. With R = 160 that is the alignment itself;
with R = 320 frame j takes alignment frame 2j+1; with R = 80 frames 2k and 2k+1 both take k.
Upstream frames past the alignment's end (at most a frame or two) have no label and are
neither trained on nor scored. (s3prl instead repeats coarser upstream frames up to the
10 ms label rate and scores every 10 ms frame.)

Heads (s3prl): ``phone_linear`` one linear layer; ``phone_1hidden`` ``Linear(d, 768)``,
dropout, ReLU, linear; ``phone_concat`` a linear layer on 9 frames (4 each side, the edge
frame repeated past an utterance's ends). s3prl's optimiser: AdamW, lr 2e-4, batch 32.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scpc.data.alignment import FRAME_SHIFT
from scpc.data.datadir import DataDir
from scpc.downstream.data import aligned_examples
from scpc.downstream.task import Example, Task
from scpc.errors import ScpcError
from scpc.eval.metrics import accuracy

IGNORE = -100


def frame_labels(ali: list[int], num_frames: int, rate: int) -> list[int]:
    """The alignment label of each of ``num_frames`` upstream frames of ``rate`` samples
    (the one at its centre); IGNORE past the alignment's end."""
    out = []
    for j in range(num_frames):
        k = (2 * j + 1) * rate // (2 * FRAME_SHIFT)
        out.append(ali[k] if k < len(ali) else IGNORE)
    return out


def context_frames(feats: torch.Tensor, lens: torch.Tensor, width: int) -> torch.Tensor:
    """(B, T, C) to (B, T, (2 width + 1) C): each frame with ``width`` frames on either side,
    left to right; indices outside ``[0, len)`` take the nearest valid frame."""
    b, t, _ = feats.shape
    offsets = torch.arange(-width, width + 1, device=feats.device)
    pos = torch.arange(t, device=feats.device)[:, None] + offsets[None]  # (T, K)
    last = (lens.to(feats.device) - 1).clamp(min=0)[:, None, None]  # (B, 1, 1)
    idx = torch.minimum(pos.clamp(min=0)[None].expand(b, -1, -1), last)  # (B, T, K)
    gathered = torch.gather(
        feats, 1, idx.reshape(b, -1, 1).expand(-1, -1, feats.shape[2])
    )  # (B, T*K, C)
    return gathered.reshape(b, t, -1)


class FrameClassifier(nn.Module):
    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        hidden: int = 0,
        dropout: float = 0.0,
        context: int = 0,
    ) -> None:
        super().__init__()
        self.context = context
        size = input_dim * (2 * context + 1)
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(size, hidden),
                nn.Dropout(dropout),
                nn.ReLU(),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.net = nn.Linear(size, num_classes)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        if self.context:
            feats = context_frames(feats, lens, self.context)
        return self.net(feats)


class PhoneFrame(Task):
    """Frame phone classification; subclasses choose the head."""

    metric = "accuracy"
    higher_is_better = True
    defaults: dict[str, Any] = {}

    def __init__(self) -> None:
        self.phones: list[str] = []
        self.rate = FRAME_SHIFT

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        for split in ("train", "dev", "test"):
            if split not in data:
                raise ScpcError(
                    f"data.{split}: the {self.name} task needs train, dev and test dirs"
                )
        table, out = aligned_examples(data)
        ids = sorted(table.values())
        if ids != list(range(len(ids))):
            phones = DataDir(data["train"]).file("phones.txt")
            raise ScpcError(f"{phones}: ids must be 0 to {len(ids) - 1}")
        self.phones = [p for p, _ in sorted(table.items(), key=lambda x: x[1])]
        return out

    def state(self) -> dict[str, Any]:
        return {"phones": list(self.phones), "rate": self.rate}

    def set_state(self, state: dict[str, Any]) -> None:
        self.phones, self.rate = list(state["phones"]), state["rate"]

    def head(self, input_dim: int, cfg: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        self.rate = downsample_rate
        return self.head(input_dim, cfg)

    def labels(self, examples: list[Example], lens: torch.Tensor, total: int) -> torch.Tensor:
        out = torch.full((len(examples), total), IGNORE, dtype=torch.long)
        for i, (ex, n) in enumerate(zip(examples, lens.tolist())):
            out[i, :n] = torch.tensor(frame_labels(ex.target, n, self.rate), dtype=torch.long)
        return out

    def loss(self, head, feats, lens, examples):
        logits = head(feats, lens).float()
        labels = self.labels(examples, lens, feats.shape[1]).to(logits.device)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)

    def predict(self, head, feats, lens, examples):
        best = head(feats, lens).argmax(-1).cpu()
        return [best[i, :n].tolist() for i, n in enumerate(lens.tolist())]

    def score(self, split, examples, predictions):
        gold, pred = [], []
        for ex, p in zip(examples, predictions):
            for g, q in zip(frame_labels(ex.target, len(p), self.rate), p):
                if g != IGNORE:
                    gold.append(g)
                    pred.append(q)
        return {"accuracy": accuracy(gold, pred)}


class PhoneLinear(PhoneFrame):
    name = "phone_linear"

    def head(self, input_dim, cfg):
        return FrameClassifier(input_dim, len(self.phones))


class PhoneOneHidden(PhoneFrame):
    name = "phone_1hidden"
    defaults: dict[str, Any] = {"hidden_size": 768, "dropout": 0.0}

    def head(self, input_dim, cfg):
        return FrameClassifier(input_dim, len(self.phones), cfg["hidden_size"], cfg["dropout"])


class PhoneConcat(PhoneFrame):
    name = "phone_concat"
    defaults: dict[str, Any] = {"concat_frames": 9}

    def head(self, input_dim, cfg):
        n = cfg["concat_frames"]
        if n < 1 or n % 2 == 0:
            raise ScpcError(f"task.concat_frames must be odd and positive, not {n}")
        return FrameClassifier(input_dim, len(self.phones), context=n // 2)
