"""SUPERB speaker identification (SID): VoxCeleb1's identification split, accuracy.

Data dirs from ``local/voxceleb1_data_prep.sh`` (``sid_train``, ``sid_dev``, ``sid_test``;
``iden_split.txt`` sets 1/2/3). The classes are the training speakers, sorted (s3prl numbers
all 1,251 from the ids; the same set); a dev or test utterance of another speaker is an
error. The head is KS's (Linear -> 256, mean pooling, Linear). Training utterances are
cropped to a random ``max_samples`` window (SUPERB: 128,000 samples, 8 s); dev and test
utterances are scored whole, and the test score comes from the dev-best head.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scpc.downstream.data import data_examples
from scpc.downstream.task import Example
from scpc.downstream.tasks.speaker import (
    check_splits,
    label_index,
    speakers_of,
    with_targets,
)
from scpc.downstream.tasks.utterance import UtteranceClassification
from scpc.nn.heads import UtteranceClassifier


def random_crop(wav: torch.Tensor, max_samples: int | None, rng: torch.Generator) -> torch.Tensor:
    """A random window of at most ``max_samples`` samples (last axis); shorter audio whole."""
    length = wav.shape[-1]
    if max_samples is None or length <= max_samples:
        return wav
    start = int(torch.randint(0, length - max_samples + 1, (1,), generator=rng))
    return wav[..., start : start + max_samples]


class SpeakerIdentification(UtteranceClassification):
    name = "sid"
    defaults: dict[str, Any] = {"projector_dim": 256, "max_samples": 128000}

    def __init__(self) -> None:
        self.speakers: list[str] = []
        self.max_samples: int | None = self.defaults["max_samples"]

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        check_splits(self.name, data, ["train", "dev", "test"])
        self.max_samples = cfg["max_samples"]
        self.speakers = speakers_of(data["train"])
        out = {}
        for split, path in data.items():
            targets = label_index(path, "utt2spk", self.speakers, "speaker", "training speakers")
            out[split] = with_targets(data_examples(path), targets)
        return out

    def state(self) -> dict[str, Any]:
        return {"speakers": list(self.speakers)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.speakers = list(state["speakers"])

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return UtteranceClassifier(input_dim, len(self.speakers), cfg["projector_dim"])

    def augment(self, wav: torch.Tensor, example: Example, rng: torch.Generator) -> torch.Tensor:
        return random_crop(wav, self.max_samples, rng)
