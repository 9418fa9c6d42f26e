"""What every utterance classification task (KS, SID, spk_utt) shares: a head giving class
logits per utterance, cross-entropy against class ids, and accuracy of the best class."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scpc.downstream.task import Example, Task
from scpc.eval.metrics import accuracy


class UtteranceClassification(Task):
    """Subclasses load examples whose ``target`` is a class id and build a head mapping
    ``(feats, lens)`` to ``(B, classes)`` logits."""

    metric = "accuracy"
    higher_is_better = True

    def loss(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> torch.Tensor:
        target = torch.tensor([ex.target for ex in examples], device=feats.device)
        return F.cross_entropy(head(feats, lens).float(), target)

    def predict(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> list[int]:
        return head(feats, lens).argmax(-1).tolist()

    def score(
        self, split: str, examples: list[Example], predictions: list[Any]
    ) -> dict[str, float]:
        return {"accuracy": accuracy([ex.target for ex in examples], predictions)}
