"""The contract between the SUPERB trainer and its tasks.

A task turns Kaldi data dirs into :class:`Example` lists (``load``), builds the downstream
head on the featurized upstream output (``build_head``), computes its loss and predictions on
padded batches, and scores predictions (``score``). The trainer (``scpc.downstream.trainer``)
does everything else: audio, batching, the upstream and its featurizer, caching, optimisation,
evaluation, checkpoints and resumption.

``cfg`` given to ``load`` and ``build_head`` is the ``task:`` section of
``conf/superb.<task>[.mini].yaml``, completed with the task class's ``defaults`` mapping when
it has one (an unknown key is then an error). ``state()`` must hold plain Python values
(str, int, float, bool, None, lists, dicts) and tensors: checkpoints are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Example:
    uttid: str
    audio: str  # a wav.scp value: a path or a Kaldi pipe ("cmd |"); read with scpc.audio.read_audio
    start: float = 0.0  # seconds (from a segments file), 0 = file start
    end: float | None = None  # seconds, None = to the end of the file
    target: Any = None  # task-specific: list[int] (CTC tokens), int (class), list[int] per frame, None (ASV test)


class Task:
    """One SUPERB-style downstream task. Subclasses are registered in scpc.downstream.tasks.TASKS by name."""

    name: str = ""
    metric: str = ""  # the main metric key in score()'s dict, e.g. "per", "wer", "accuracy", "eer"
    higher_is_better: bool = False
    has_dev: bool = True  # ASV: False (SUPERB scores every saved checkpoint on the test trials and reports the best)

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        """data: split name -> Kaldi data dir, e.g. {"train": ..., "dev": ..., "test": ...}. Builds vocab/labels
        from the training split only (kept in self, see state()). Returns split -> examples.
        Bad input -> ScpcError naming the file (and line) and the problem."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Everything load() learned (vocab, label list, trials...) to rebuild a head for evaluation."""
        raise NotImplementedError

    def set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        """The downstream model on featurized upstream output (B, T, input_dim); downsample_rate = samples per frame (160 = 10 ms)."""
        raise NotImplementedError

    def loss(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> torch.Tensor:
        """Mean loss of a batch. feats (B, T, C) padded, lens (B,) valid frames."""
        raise NotImplementedError

    def predict(
        self, head: nn.Module, feats: torch.Tensor, lens: torch.Tensor, examples: list[Example]
    ) -> list[Any]:
        """One prediction per example (token ids, class id, frame labels, or an embedding tensor for ASV)."""
        raise NotImplementedError

    def score(
        self, split: str, examples: list[Example], predictions: list[Any]
    ) -> dict[str, float]:
        """Metrics in percent (via scpc.eval.metrics), including self.metric."""
        raise NotImplementedError

    def augment(self, wav: torch.Tensor, example: Example, rng: torch.Generator) -> torch.Tensor:
        """Optional train-time waveform augmentation/cropping (default: identity), e.g. SID's crop to max samples."""
        return wav
