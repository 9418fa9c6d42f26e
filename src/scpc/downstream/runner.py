"""A probe on the splits of a task: batching, the upstream (through the cache when it is
frozen) and evaluation. The trainer (:mod:`scpc.downstream.trainer`) adds training; scoring a
saved probe (:mod:`scpc.downstream.evaluate`) uses it as it is."""

from __future__ import annotations

from typing import Any

import torch

from scpc.audio import SAMPLE_RATE
from scpc.config import Config
from scpc.downstream import data as sdata
from scpc.downstream.probe import Probe
from scpc.downstream.task import Example, Task
from scpc.downstream.upstream import TableUpstream
from scpc.errors import ScpcError
from scpc.models.inference import default_batch_samples
from scpc.nn.amp import amp_dtype, autocast
from scpc.progress import progress_bar
from scpc.progress import quiet as quiet_env


class Runner:
    """A probe on the splits of a task: batching, the upstream (through the cache when it is
    frozen) and evaluation. :class:`SuperbTrainer` adds training."""

    def __init__(
        self,
        task: Task,
        cfg: Config,
        probe: Probe,
        splits: dict[str, list[Example]],
        dirs: dict[str, str],
        device: torch.device,
        cache: sdata.FeatureCache | sdata.TableFeatures | None,
        quiet: bool = False,
    ) -> None:
        self.task, self.cfg, self.t = task, cfg, cfg["train"]
        self.probe, self.splits, self.dirs, self.device, self.cache = (
            probe,
            splits,
            dirs,
            device,
            cache,
        )
        if isinstance(probe.upstream, TableUpstream):  # features only, read from their tables
            if type(task).augment is not Task.augment:
                raise ScpcError(
                    f"task {task.name} augments its training audio: it needs a checkpoint "
                    f"upstream, not the features of {probe.upstream.scp}"
                )
            self.cache = sdata.TableFeatures(probe.upstream)
        self.quiet = quiet or quiet_env()
        self.amp_dtype = amp_dtype(self.t["amp"], device)
        # a task that augments waveforms needs the live upstream on its training audio
        self.live_train = self.cache is None or type(task).augment is not Task.augment
        self._lengths: dict[str, list[float]] = {}

    # ----------------------------------------------------------------- set-up helpers
    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _cached(self, split: str) -> bool:
        return self.cache is not None and not (split == "train" and self.live_train)

    def length_seconds(self, split: str) -> float:
        """Seconds of audio per unit of :meth:`lengths`: an upstream frame, or a second."""
        if self._cached(split):
            return self.probe.upstream.downsample_rate / SAMPLE_RATE
        return 1.0

    def lengths(self, split: str) -> list[float]:
        """Per-example sizes for batching: cached frames, else seconds of audio."""
        if split not in self._lengths:
            examples = self.splits[split]
            if self._cached(split):
                self.fill(split)
                self._lengths[split] = [self.cache.get(ex).shape[1] for ex in examples]
            else:
                self._lengths[split] = sdata.durations(examples, list(self.dirs.values()))
        return self._lengths[split]

    def fill(self, split: str) -> None:
        sdata.fill_cache(
            self.cache,
            upstream=self.probe.upstream,
            examples=self.splits[split],
            device=self.device,
            batch_samples=default_batch_samples(self.device.type),
            desc=f"upstream ({split})",
            quiet=self.quiet,
        )

    def hidden(
        self, split: str, examples: list[Example], wavs: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, T, C) hidden states and (B,) frames on the device."""
        if self.cache is not None and wavs is None:
            hs = []
            for ex in examples:
                h = self.cache.get(ex)
                if h is None:  # evicted disk file: recompute it
                    self.fill(split)
                    h = self.cache.get(ex)
                hs.append(h)
            hidden, lens = sdata.pad_hidden(hs)
            return hidden.to(self.device, non_blocking=True), lens.to(self.device)
        if wavs is None:
            wavs = [torch.from_numpy(sdata.read_wav(ex)) for ex in examples]
        with self._autocast():
            hidden, lens = self.probe.upstream.encode(wavs, self.device)
        return hidden.float(), lens

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[dict[str, float], float | None]:
        """Scores of the current probe on ``split``, and its mean loss when targets exist."""
        self.probe.eval()
        examples = self.splits[split]
        lengths = self.lengths(split)
        predictions: list[Any] = [None] * len(examples)
        total = count = 0.0
        with_loss = split != "test" and all(ex.target is not None for ex in examples)
        batches = sdata.eval_batches(lengths, self.t["eval_batch_size"])
        for batch in progress_bar(
            batches, desc=f"eval {split}", unit="batch", leave=False, disable=self.quiet
        ):
            exs = [examples[i] for i in batch]
            hidden, lens = self.hidden(split, exs)
            feats = self.probe.featurizer(hidden, lens)
            with self._autocast():
                preds = self.task.predict(self.probe.head, feats, lens, exs)
                if with_loss:
                    total += float(self.task.loss(self.probe.head, feats, lens, exs)) * len(exs)
                    count += len(exs)
            for i, p in zip(batch, preds):
                predictions[i] = p
        self.probe.train()
        scores = self.task.score(split, examples, predictions)
        return scores, (total / count if count else None)
