"""Legacy s3prl speaker probes (``speaker_linear_frame_libri``, ``speaker_linear_utter_libri``)
and the speaker-label helpers that SID and ASV share.

s3prl splits LibriSpeech train-clean-100 (251 speakers) with CPC's fixed utterance lists.
Here the probes take ONE data dir (``data: {all: <dir>}``; mini: ``data/mini/train``) and
split every speaker's utterances deterministically: in the utterance ids' sorted order,
``round(n * dev_fraction)`` and ``round(n * test_fraction)`` utterances (at least one each)
are taken at evenly spread positions, dev and test interleaved, and the rest is training.
Every speaker is thus in all three parts (a closed-set task) and spread positions take
held-out utterances from all of a speaker's chapters, not from the last one.

* ``spk_frame``: a linear layer on every frame; cross-entropy and accuracy over the valid
  frames (s3prl also trains on the padding frames; we do not).
* ``spk_utt``: a linear layer on the utterance's mean frame; cross-entropy, accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scpc.data import datadir as dd
from scpc.downstream.data import data_examples
from scpc.downstream.task import Example, Task
from scpc.downstream.tasks.utterance import UtteranceClassification
from scpc.errors import ScpcError
from scpc.eval.metrics import accuracy
from scpc.masks import frame_mask
from scpc.nn.heads import UtteranceClassifier


def check_splits(task: str, data: dict[str, str], needed: Sequence[str]) -> None:
    """``data`` (split -> dir) names exactly the splits ``task`` uses."""
    if sorted(data) != sorted(needed):
        raise ScpcError(
            f"data: the {task} task takes the data dirs {', '.join(needed)}, "
            f"not {', '.join(data) or 'none'}"
        )


def label_index(
    path: str | os.PathLike, name: str, labels: Sequence[str], what: str, among: str
) -> dict[str, int]:
    """utt -> index in ``labels`` of the table ``path/name``; a label outside ``labels`` is
    an error naming the file and line ("speaker 'x' is not one of the 20 training speakers")."""
    file = dd.DataDir(path).file(name)
    index = {label: i for i, label in enumerate(labels)}
    out = {}
    # read_table refuses empty lines, so the n-th entry is line n
    for lineno, (utt, label) in enumerate(dd.read_table(file).items(), 1):
        if label not in index:
            shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
            raise ScpcError(
                f"{file}:{lineno}: {utt}: {what} {label!r} is not one of the "
                f"{len(labels)} {among} ({shown})"
            )
        out[utt] = index[label]
    return out


def speakers_of(path: str | os.PathLike, utts: Sequence[str] | None = None) -> list[str]:
    """The sorted speakers of a data dir (of ``utts`` only, when given)."""
    utt2spk = dd.DataDir(path).table("utt2spk")
    keep = utt2spk if utts is None else {u: utt2spk[u] for u in utts}
    return sorted(set(keep.values()))


def with_targets(examples: list[Example], targets: dict[str, Any]) -> list[Example]:
    for ex in examples:
        ex.target = targets[ex.uttid]
    return examples


def split_utterances(
    path: str | os.PathLike, dev_fraction: float, test_fraction: float
) -> dict[str, list[str]]:
    """train/dev/test utterance ids of one data dir, every speaker in each (see the module)."""
    if not (dev_fraction > 0 and test_fraction > 0 and dev_fraction + test_fraction < 1):
        raise ScpcError(
            f"task: dev_fraction {dev_fraction} and test_fraction {test_fraction} must be "
            "positive and sum to less than 1"
        )
    file = dd.DataDir(path).file("utt2spk")
    by_speaker: dict[str, list[str]] = {}
    for utt, spk in dd.read_table(file).items():
        by_speaker.setdefault(spk, []).append(utt)
    parts: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for spk, utts in sorted(by_speaker.items()):
        n = len(utts)
        n_dev, n_test = max(1, round(n * dev_fraction)), max(1, round(n * test_fraction))
        held = n_dev + n_test
        if held >= n:
            raise ScpcError(
                f"{file}: speaker {spk} has {n} utterances, too few for {n_dev} dev, "
                f"{n_test} test and at least one training utterance"
            )
        utts = sorted(utts)
        roles = dict.fromkeys(range(n), "train")
        for k in range(held):
            # dev spread evenly over the held-out positions, the first one included
            dev = -(-(k + 1) * n_dev // held) > -(-k * n_dev // held)
            roles[(2 * k + 1) * n // (2 * held)] = "dev" if dev else "test"
        for i, utt in enumerate(utts):
            parts[roles[i]].append(utt)
    return {part: sorted(utts) for part, utts in parts.items()}


class _SpeakerProbe(Task):
    """Shared data handling of the two legacy probes; subclasses give the head and loss."""

    metric = "accuracy"
    higher_is_better = True
    defaults: dict[str, Any] = {"dev_fraction": 0.1, "test_fraction": 0.1}

    def __init__(self) -> None:
        self.speakers: list[str] = []

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        check_splits(self.name, data, ["all"])
        parts = split_utterances(data["all"], cfg["dev_fraction"], cfg["test_fraction"])
        self.speakers = speakers_of(data["all"], parts["train"])
        targets = label_index(data["all"], "utt2spk", self.speakers, "speaker", "speakers")
        by_utt = {ex.uttid: ex for ex in with_targets(data_examples(data["all"]), targets)}
        return {part: [by_utt[u] for u in utts] for part, utts in parts.items()}

    def state(self) -> dict[str, Any]:
        return {"speakers": list(self.speakers)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.speakers = list(state["speakers"])


class SpeakerFrame(_SpeakerProbe):
    """Linear speaker classification of every frame; accuracy over all valid frames."""

    name = "spk_frame"

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return nn.Linear(input_dim, len(self.speakers))

    def loss(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> torch.Tensor:
        mask = frame_mask(lens, feats.shape[1])
        target = torch.tensor([ex.target for ex in examples], device=feats.device)
        frames_target = target[:, None].expand(mask.shape)
        return F.cross_entropy(head(feats)[mask].float(), frames_target[mask])

    def predict(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> list[list[int]]:
        best = head(feats).argmax(-1).cpu()
        return [best[b, : int(n)].tolist() for b, n in enumerate(lens)]

    def score(
        self, split: str, examples: list[Example], predictions: list[Any]
    ) -> dict[str, float]:
        gold = [ex.target for ex, pred in zip(examples, predictions) for _ in pred]
        return {"accuracy": accuracy(gold, [p for pred in predictions for p in pred])}


class SpeakerUtterance(UtteranceClassification, _SpeakerProbe):
    """Linear speaker classification of the mean-pooled utterance."""

    name = "spk_utt"

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return UtteranceClassifier(input_dim, len(self.speakers), projector_dim=None)
