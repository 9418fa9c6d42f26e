"""SUPERB automatic speaker verification (ASV): VoxCeleb1, x-vector head, EER.

As s3prl's ``sv_voxceleb1`` with ``configs/amsoftmax.yaml``: Linear(upstream -> 512), five
TDNN layers (context 5/3/3/1/1, dilation 1/2/3/1/1, the last to 1500), statistics pooling
(mean and std over the valid frames), segment layers 512 -> 512, AM-softmax (s=30, m=0.4)
over the training speakers. The scored embedding is segment layer 1 after its ReLU, as
s3prl's ``inference``. Trials are scored by the cosine of the two embeddings; the EER and
the normalised minDCF at p_target=0.01 (C_miss = C_fa = 1) are reported.

Data dirs from ``local/voxceleb1_data_prep.sh``: ``asv_train`` (speakers absent from the
trials) and ``asv_test`` with a Kaldi ``trials`` file (``enroll test target|nontarget``).
There is no dev set (``has_dev = False``): the trainer scores every saved checkpoint on the
test trials and reports the best, as s3prl's ``test_expdir.sh``.

Training utterances not longer than ``min_samples`` (SUPERB: 32,000, 2 s) are dropped and
the others cropped to a random ``max_samples`` window (128,000, 8 s). s3prl measures the
length after sox's silence removal (``silence 1 0.1 0.1% -1 0.1 0.1%``, which removes only
near-digital silence) and applies that trimming to the audio; we use the durations of the
data dir and the audio as it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scpc.audio import SAMPLE_RATE
from scpc.data import datadir as dd
from scpc.downstream.data import data_examples
from scpc.downstream.task import Example, Task
from scpc.downstream.tasks.sid import random_crop
from scpc.downstream.tasks.speaker import (
    check_splits,
    label_index,
    speakers_of,
    with_targets,
)
from scpc.errors import ScpcError
from scpc.eval.metrics import equal_error_rate
from scpc.nn.heads import AMSoftmax, XVector

Trial = tuple[str, str, bool]  # enrolment utterance, test utterance, same speaker


def read_trials(path: str | os.PathLike, utts: set[str]) -> list[Trial]:
    """The ``trials`` file of a data dir; each utterance must be one of ``utts``."""
    file = dd.DataDir(path).file("trials")
    if not file.is_file():
        raise ScpcError(f"{file}: no such file (the ASV test set needs its trials)")
    trials = []
    with open(file, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 3 or fields[2] not in ("target", "nontarget"):
                raise ScpcError(f"{file}:{lineno}: expected 'enroll test target|nontarget'")
            for utt in fields[:2]:
                if utt not in utts:
                    raise ScpcError(f"{file}:{lineno}: {utt} is not an utterance of {path}")
            trials.append((fields[0], fields[1], fields[2] == "target"))
    if not trials:
        raise ScpcError(f"{file}: no trials")
    return trials


def cosine_scores(embeddings: dict[str, torch.Tensor], trials: Sequence[Trial]) -> list[float]:
    """The cosine similarity of the two embeddings of every trial."""
    utts = sorted({u for trial in trials for u in trial[:2]})
    index = {u: i for i, u in enumerate(utts)}
    unit = F.normalize(torch.stack([embeddings[u].float() for u in utts]), dim=-1)
    enroll = torch.tensor([index[t[0]] for t in trials])
    test = torch.tensor([index[t[1]] for t in trials])
    return (unit[enroll] * unit[test]).sum(-1).tolist()


def min_dcf(
    scores: Sequence[float],
    targets: Sequence[bool],
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (NIST SRE): the least ``c_miss * p_target * P_miss
    + c_fa * (1 - p_target) * P_fa`` over thresholds (accept ``score >= threshold``), divided
    by the cost of the better trivial system (accept all or reject all). Not a percentage."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets, dtype=bool)
    n_tar, n_non = int(t.sum()), int((~t).sum())
    if n_tar == 0 or n_non == 0:
        raise ScpcError(f"minDCF needs targets and non-targets ({n_tar} targets, {n_non} non)")
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    # one operating point after each run of equal scores, plus "reject all"
    last = np.r_[s[1:] != s[:-1], True]
    p_miss = np.r_[1.0, 1.0 - np.cumsum(t)[last] / n_tar]
    p_fa = np.r_[0.0, np.cumsum(~t)[last] / n_non]
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return float(cost.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


class SpeakerEmbedder(nn.Module):
    """The x-vector network and its AM-softmax training loss over the training speakers."""

    def __init__(self, input_dim: int, num_speakers: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.xvector = XVector(input_dim, cfg["hidden_dim"], cfg["agg_dim"], cfg["embed_dim"])
        self.amsoftmax = AMSoftmax(cfg["embed_dim"], num_speakers, cfg["scale"], cfg["margin"])

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """The embeddings that are scored (B, embed_dim)."""
        return self.xvector.embed(feats, lens)


class SpeakerVerification(Task):
    name = "asv"
    metric = "eer"
    higher_is_better = False
    has_dev = False
    defaults: dict[str, Any] = {
        "hidden_dim": 512,
        "agg_dim": 1500,
        "embed_dim": 512,
        "scale": 30.0,
        "margin": 0.4,
        "min_samples": 32000,  # shorter training utterances are dropped
        "max_samples": 128000,  # longer ones cropped at random
    }

    def __init__(self) -> None:
        self.speakers: list[str] = []
        self.max_samples: int | None = self.defaults["max_samples"]
        self.trials: dict[str, list[Trial]] = {}

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        check_splits(self.name, data, ["train", "test"])
        self.max_samples = cfg["max_samples"]
        train = data_examples(data["train"])
        if cfg["min_samples"] is not None:
            durations = dd.DataDir(data["train"]).durations()
            train = [ex for ex in train if durations[ex.uttid] * SAMPLE_RATE > cfg["min_samples"]]
            if not train:
                raise ScpcError(
                    f"{data['train']}: no utterance longer than min_samples {cfg['min_samples']}"
                )
        self.speakers = speakers_of(data["train"], [ex.uttid for ex in train])
        with_targets(
            train,
            label_index(data["train"], "utt2spk", self.speakers, "speaker", "training speakers"),
        )
        test = data_examples(data["test"])
        self.trials = {"test": read_trials(data["test"], {ex.uttid for ex in test})}
        return {"train": train, "test": test}

    def state(self) -> dict[str, Any]:
        return {"speakers": list(self.speakers)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.speakers = list(state["speakers"])

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return SpeakerEmbedder(input_dim, len(self.speakers), cfg)

    def loss(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> torch.Tensor:
        target = torch.tensor([ex.target for ex in examples], device=feats.device)
        return head.amsoftmax(head.xvector(feats, lens).float(), target)

    def predict(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> list[torch.Tensor]:
        return list(head(feats, lens).detach().float().cpu())

    def augment(self, wav: torch.Tensor, example: Example, rng: torch.Generator) -> torch.Tensor:
        return random_crop(wav, self.max_samples, rng)

    def score(
        self, split: str, examples: list[Example], predictions: list[Any]
    ) -> dict[str, float]:
        if split not in self.trials:
            raise ScpcError(f"asv: no trials loaded for the {split} split")
        embeddings = {ex.uttid: emb for ex, emb in zip(examples, predictions)}
        trials = self.trials[split]
        missing = next((u for t in trials for u in t[:2] if u not in embeddings), None)
        if missing is not None:
            raise ScpcError(f"asv: {split}: no embedding of {missing}, which a trial names")
        scores, targets = cosine_scores(embeddings, trials), [t[2] for t in trials]
        return {"eer": equal_error_rate(scores, targets), "min_dcf": min_dcf(scores, targets)}
