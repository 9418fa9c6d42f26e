"""SUPERB keyword spotting (KS): Speech Commands v0.01, 12 classes, accuracy.

The classes are the 10 command words, ``_unknown_`` (the other 20 words) and ``_silence_``,
in s3prl's order. The data dirs come from ``local/speech_commands_data_prep.sh``
(``scpc.data.speech_commands``): ``utt2label`` already maps the other words to
``_unknown_``, and training/validation silence is one-second windows of the background
noise recordings given as ``segments``; the test set is the official one, silence included.

Differences from s3prl, on purpose:

* s3prl draws training examples with a ``WeightedRandomSampler`` (weight 1/count of the
  class), so every class is drawn equally often. We balance the training list instead, so
  that any sampler sees the same proportions: every class is repeated (whole passes in
  sorted order, then its first examples) up to the count of the largest class (``balance``).
* s3prl adds the six background files themselves as silence examples and crops one random
  second per draw; our silence is the fixed one-second windows of the data dir.
* s3prl also resamples the dev set with that weighted sampler at every evaluation (a noisy
  dev score); we score the dev set as it is.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scpc.data.speech_commands import COMMANDS, SILENCE, UNKNOWN
from scpc.downstream.data import data_examples
from scpc.downstream.task import Example
from scpc.downstream.tasks.speaker import (
    check_splits,
    label_index,
    with_targets,
)
from scpc.downstream.tasks.utterance import UtteranceClassification
from scpc.nn.heads import UtteranceClassifier

CLASSES: tuple[str, ...] = (*COMMANDS, UNKNOWN, SILENCE)


def balanced(examples: list[Example], num_classes: int) -> list[Example]:
    """Every class repeated up to the size of the largest one, in class order."""
    by_class: list[list[Example]] = [[] for _ in range(num_classes)]
    for ex in examples:
        by_class[ex.target].append(ex)
    largest = max(len(c) for c in by_class)
    out = []
    for members in by_class:
        if members:
            reps, rest = divmod(largest, len(members))
            out += members * reps + members[:rest]
    return out


class KeywordSpotting(UtteranceClassification):
    name = "ks"
    defaults: dict[str, Any] = {"projector_dim": 256, "balance": True}

    def __init__(self) -> None:
        self.classes: list[str] = list(CLASSES)

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        check_splits(self.name, data, ["train", "dev", "test"])
        out = {}
        for split, path in data.items():
            targets = label_index(path, "utt2label", self.classes, "label", "classes")
            out[split] = with_targets(data_examples(path), targets)
        if cfg["balance"]:
            out["train"] = balanced(out["train"], len(self.classes))
        return out

    def state(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.classes = list(state["classes"])

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return UtteranceClassifier(input_dim, len(self.classes), cfg["projector_dim"])
