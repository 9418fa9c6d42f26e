"""The SUPERB trainer: a task's head on a frozen (or fine-tuned) upstream, SUPERB's protocol.

``conf/superb.<task>[.mini].yaml`` has five sections over the defaults below (the one place
they live): ``task`` (read by the task, over its class's ``defaults``), ``data`` (split -> Kaldi
data dir), ``train``, ``featurizer`` and ``upstream``, plus ``specaug``. Training is counted in
optimiser steps (``max_steps``), with gradient accumulation and clipping; every
``eval_every`` steps the head is scored on dev and the best one is kept (``dev-best.ckpt``);
at the end that head is scored on test (``results.json``). A task without a dev set (ASV) is
scored on test at every evaluation and the best score is reported, as SUPERB does.

Exact resumption: an epoch's batches depend on (seed, epoch) only and every micro-batch
seeds its randomness from (seed, epoch, batch), so a run killed at any point and started
again (from ``last.ckpt``, written at step boundaries) takes the same steps as one that was
never interrupted.

Run directory: ``config.yaml`` (the resolved config), ``train.log``, ``metrics.csv``,
``curves.png``, ``last.ckpt``, ``dev-best.ckpt``, ``results.json`` and ``cache/`` (frozen
upstream outputs that did not fit in memory).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from scpc.config import Config, dump, merge, read_yaml, set_dotted, yaml_floats
from scpc.data.batch_plan import epoch_plan
from scpc.downstream import data as sdata
from scpc.downstream.task import Example, Task
from scpc.downstream.tasks import make_task
from scpc.downstream.upstream import Featurizer, Upstream, select_layers
from scpc.errors import ScpcError
from scpc.io import atomic_write, load_torch, save_torch
from scpc.models.checkpoint import checkpoint_id, load_inference_checkpoint
from scpc.models.inference import default_batch_samples, layer_sizes, resolve_device
from scpc.nn import specaug
from scpc.train.loop import git_commit, mix
from scpc.train.metrics import save_figure
from scpc.train.schedule import lr_factor, make_optimizer
from scpc.train.stop_signals import StopSignals, stop_training

STATE_FORMAT = "scpc-superb-state-1"
PROBE_FORMAT = "scpc-superb-probe-1"

TRAIN_DEFAULTS: Config = {
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "amp": "off",  # off | auto (bf16 on a GPU that has it, else fp16) | bf16 | fp16: GPU only, worth it when fine-tuning
    "optimizer": "adam",  # adam | adamw | sgd
    "lr": 1.0e-4,  # SUPERB tunes only this, per upstream and task (local/superb_lr_sweep.sh)
    "upstream_lr": None,  # fine-tuning: the upstream's learning rate; null: lr
    "weight_decay": 0.0,
    "momentum": 0.9,  # sgd only
    "warmup_steps": 0,
    "lr_decay": "none",  # none | linear | cosine | exponential, after warm-up
    "decay_steps": None,  # null: until max_steps
    "final_lr_ratio": 0.01,
    "batch_size": 32,  # utterances per micro-batch
    "accumulate": 1,  # micro-batches per optimiser step
    "max_steps": 200000,  # optimiser steps
    "clip": 1.0,  # global gradient-norm clipping; a step with a non-finite norm is skipped
    "eval_every": 2000,  # steps between evaluations on dev (and the dev-best check)
    "eval_batch_size": 32,
    "log_every": 100,  # steps per training row of metrics.csv
    "save_every": 500,  # steps between writes of last.ckpt (also after every evaluation)
    "cache": "auto",  # frozen upstream outputs: auto (memory, then disk) | memory | disk | none
    "cache_dir": None,  # null: <out>/cache
    "cache_memory_gb": 4.0,  # auto: memory budget before spilling to disk
    "num_workers": 0,  # audio-reading processes when the upstream runs live
}
DEFAULTS: Config = {
    "task": {},
    "data": {},
    "train": TRAIN_DEFAULTS,
    "featurizer": {
        "layer": None,  # null: learnable weighted sum of the layers; N: hidden state N only
        "layer_norm": False,  # layer-normalise each layer before the sum
        "cmvn": False,  # standardise the features per utterance (s3prl's fbank/mfcc baselines)
    },
    "upstream": {"finetune": False},
    "specaug": specaug.DEFAULTS,
}
CHOICES = {
    "amp": ("auto", "bf16", "fp16", "off"),
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_decay": ("none", "linear", "cosine", "exponential"),
    "cache": ("auto", "memory", "disk", "none"),
}
# keys that change how a run executes, not what it computes: free to differ on resumption
RUNTIME_KEYS = ("device", "cache", "cache_dir", "cache_memory_gb", "num_workers")


# ---------------------------------------------------------------------------- config


def load_config(
    path: str | os.PathLike, task: Task, overrides: dict[str, Any] | None = None
) -> Config:
    """A superb YAML over :data:`DEFAULTS` (and the task's ``defaults``), then ``overrides``
    (dotted keys, e.g. ``{"train.lr": 1e-3}``); unknown keys and wrong types are errors."""
    raw = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return complete_config(raw, task, str(path))


def complete_config(raw: Config, task: Task, source: str) -> Config:
    raw = copy.deepcopy(raw)
    data = raw.pop("data", {}) or {}
    task_cfg = raw.pop("task", {}) or {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ScpcError(f"{source}: data must map split names to data directories")
    if not isinstance(task_cfg, dict):
        raise ScpcError(f"{source}: task must be a mapping")
    base = {k: v for k, v in DEFAULTS.items() if k not in ("data", "task")}
    cfg = merge(base, yaml_floats(raw, base), source)
    defaults = getattr(task, "defaults", None)
    if defaults is not None:
        task_cfg = merge(defaults, yaml_floats(task_cfg, defaults), source, "task.")
    cfg["task"] = task_cfg
    cfg["data"] = data
    t = cfg["train"]
    for key, choices in CHOICES.items():
        if t[key] not in choices:
            raise ScpcError(f"{source}: train.{key} must be one of {', '.join(choices)}")
    for key in ("batch_size", "accumulate", "max_steps", "eval_every", "log_every", "save_every"):
        if t[key] < 1:
            raise ScpcError(f"{source}: train.{key} must be at least 1")
    if t["upstream_lr"] is not None:
        t["upstream_lr"] = _float(t["upstream_lr"], "train.upstream_lr", source)
    if cfg["featurizer"]["layer"] is not None and not isinstance(cfg["featurizer"]["layer"], int):
        raise ScpcError(f"{source}: featurizer.layer must be an integer or null")
    return cfg


def _float(value: Any, key: str, source: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ScpcError(f"{source}: {key} must be a number, not {value!r}") from None


def _comparable(cfg: Config) -> str:
    cfg = copy.deepcopy(cfg)
    for key in RUNTIME_KEYS:
        cfg["train"].pop(key, None)
    return dump(cfg)


# ---------------------------------------------------------------------------- metrics


class MetricsLog:
    """metrics.csv: one row per logged training window and per evaluation."""

    def __init__(self, path: Path, metric: str) -> None:
        self.path = path
        self.columns = ("split", "step", "epoch", "loss", metric, "lr")

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate(self, step: int) -> None:
        """Drop rows past ``step`` (written after the state a resumed run restarts from)."""
        keep = [r for r in self.rows() if int(r["step"]) <= step]
        with atomic_write(self.path) as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(keep)

    def append(self, **row: Any) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.columns})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(log: MetricsLog, png: Path, metric: str) -> None:
    """Loss (train, dev) and the eval metric against optimiser steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log.rows()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for split, style in (("train", "-"), ("dev", "o-")):
        pts = [
            (int(r["step"]), float(r["loss"])) for r in rows if r["split"] == split and r["loss"]
        ]
        if pts:
            a.plot(*zip(*pts), style, label=split, markersize=3)
    for split in ("dev", "test"):
        pts = [
            (int(r["step"]), float(r[metric])) for r in rows if r["split"] == split and r[metric]
        ]
        if pts:
            b.plot(*zip(*pts), "o-", label=split, markersize=3)
    a.set_ylabel("loss")
    b.set_ylabel(f"{metric} (%)")
    for ax in (a, b):
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    save_figure(fig, png)


# ---------------------------------------------------------------------------- the probe


class Probe(nn.Module):
    """Upstream, featurizer and head: what a SUPERB checkpoint holds."""

    def __init__(self, upstream: Upstream, featurizer: Featurizer, head: nn.Module) -> None:
        super().__init__()
        self.upstream, self.featurizer, self.head = upstream, featurizer, head

    def trainable_state(self) -> dict[str, Any]:
        return {
            "featurizer": self.featurizer.state_dict(),
            "head": self.head.state_dict(),
            "upstream": self.upstream.model.state_dict() if self.upstream.finetune else None,
        }

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        self.featurizer.load_state_dict(state["featurizer"])
        self.head.load_state_dict(state["head"])
        if state.get("upstream") is not None:
            self.upstream.model.load_state_dict(state["upstream"])


def build_probe(
    task: Task, cfg: Config, upstream_path: str | os.PathLike, device: torch.device
) -> Probe:
    model = load_inference_checkpoint(upstream_path).to(device)
    finetune = cfg["upstream"]["finetune"]
    layers = select_layers(layer_sizes(model, device), cfg["featurizer"]["layer"])
    upstream = Upstream(model, layers, finetune, device)
    torch.manual_seed(mix(cfg["train"]["seed"], "init"))
    featurizer = Featurizer(len(layers), cfg["featurizer"]["layer_norm"], cfg["featurizer"]["cmvn"])
    head = task.build_head(upstream.output_size, upstream.downsample_rate, cfg["task"])
    return Probe(upstream, featurizer, head).to(device)


def upstream_name(path: str | os.PathLike) -> str:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        name = payload.get("provenance", {}).get("name")
    except Exception:
        name = None
    return name or Path(path).stem


# ---------------------------------------------------------------------------- trainer


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
        cache: sdata.FeatureCache | None,
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
        self.quiet = quiet or os.environ.get("SCPC_QUIET") == "1"
        self.amp_dtype = self._amp_dtype()
        # a task that augments waveforms needs the live upstream on its training audio
        self.live_train = cache is None or type(task).augment is not Task.augment
        self._lengths: dict[str, list[float]] = {}

    # ----------------------------------------------------------------- set-up helpers
    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.t["amp"]
        if amp == "off" or self.device.type != "cuda":
            return None
        if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float16

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def lengths(self, split: str) -> list[float]:
        """Per-example sizes for batching: cached frames, else seconds of audio."""
        if split not in self._lengths:
            examples = self.splits[split]
            if self.cache is not None and not (split == "train" and self.live_train):
                self.fill(split)
                self._lengths[split] = [self.cache.get(ex).shape[1] for ex in examples]
            else:
                self._lengths[split] = sdata.durations(examples, list(self.dirs.values()))
        return self._lengths[split]

    def fill(self, split: str) -> None:
        sdata.fill_cache(
            self.cache,
            self.probe.upstream,
            self.splits[split],
            self.device,
            default_batch_samples(self.device.type),
            f"upstream ({split})",
            self.quiet,
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
        for batch in tqdm(
            batches, desc=f"eval {split}", leave=False, disable=self.quiet, file=sys.stderr
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


class SuperbTrainer(Runner):
    def __init__(
        self,
        task: Task,
        cfg: Config,
        upstream_path: str | os.PathLike,
        out_dir: str | os.PathLike,
        root: str | os.PathLike = ".",
        quiet: bool = False,
    ) -> None:
        self.out = Path(out_dir)
        self.upstream_path = str(upstream_path)
        device = resolve_device(cfg["train"]["device"])
        self.eval_split = "dev" if task.has_dev else "test"
        needed = ("train", "dev", "test") if task.has_dev else ("train", "test")
        if not cfg["data"]:
            raise ScpcError("data: the config names no data dirs")
        dirs = {}
        for split, d in cfg["data"].items():
            dirs[split] = str(Path(d) if Path(d).is_absolute() else Path(root) / d)
            if not Path(dirs[split]).is_dir():
                raise ScpcError(f"{dirs[split]}: no such data dir (data.{split})")
        splits = task.load(dirs, cfg["task"])
        for split in needed:
            if not splits.get(split):
                raise ScpcError(
                    f"task {task.name}: no {split} examples from {', '.join(dirs.values())}"
                )
        self.upstream_id = checkpoint_id(upstream_path)
        probe = build_probe(task, cfg, upstream_path, device)
        super().__init__(task, cfg, probe, splits, dirs, device, None, quiet)
        self.cache = self._cache()
        self.live_train = self.cache is None or type(task).augment is not Task.augment
        self.specaug = specaug.from_config(cfg["specaug"])
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda"
        )
        self.optimizer = self._optimizer()
        self.metrics = MetricsLog(self.out / "metrics.csv", task.metric)
        self.step = self.epoch = self.batch = 0
        self.best: dict[str, Any] | None = None
        self.window = {"loss": 0.0, "n": 0}
        self.train_seconds = 0.0
        self._plan_len = 1 << 62  # the current epoch's number of batches

    def log(self, message: str, echo: bool = True) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "train.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if not echo:
            return
        if self.quiet:
            print(message, file=sys.stderr)
        else:
            tqdm.write(message, file=sys.stderr)

    @property
    def _schedule(self) -> Config:
        """The train section under the names scpc.train.schedule reads (lr is learning_rate)."""
        return {**self.t, "learning_rate": self.t["lr"]}

    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.t
        p = self.probe
        groups = [{"params": [*p.featurizer.parameters(), *p.head.parameters()], "scale": 1.0}]
        if p.upstream.finetune:
            scale = (t["upstream_lr"] or t["lr"]) / t["lr"]
            groups.append({"params": list(p.upstream.model.parameters()), "scale": scale})
        return make_optimizer(groups, self._schedule)

    def _set_lr(self) -> float:
        """The base rate of this step; each parameter group gets it times its scale."""
        lr = self.t["lr"] * lr_factor(self.step, self._schedule, self.t["max_steps"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("scale", 1.0)
        return lr

    def _cache(self) -> sdata.FeatureCache | None:
        if self.probe.upstream.finetune or self.t["cache"] == "none":
            return None
        directory = self.t["cache_dir"] or self.out / "cache"
        key = sdata.upstream_key(self.upstream_id, self.probe.upstream.layers)
        return sdata.FeatureCache(
            self.t["cache"], directory, key, self.t["cache_memory_gb"] * 2**30
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "config": _comparable(self.cfg),
            "upstream_id": self.upstream_id,
            "probe": self.probe.trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": {
                "step": self.step,
                # at an epoch's end, resume at the start of the next one
                "epoch": self.epoch + (self.batch >= self._plan_len),
                "batch": self.batch if self.batch < self._plan_len else 0,
                "window": dict(self.window),
                "train_seconds": self.train_seconds,
            },
            "best": json.dumps(self.best),
            "rng": torch.get_rng_state(),
        }

    def save_last(self) -> None:
        save_torch(self.state_dict(), self.out / "last.ckpt")

    def restore(self) -> bool:
        path = self.out / "last.ckpt"
        if not path.is_file():
            return False
        state = load_torch(path, STATE_FORMAT, "a SUPERB training state", self.device)
        if state["config"] != _comparable(self.cfg):
            raise ScpcError(
                f"{path}: saved with another config (see {self.out / 'config.yaml'}); "
                "use another --out or remove the directory to start afresh"
            )
        if state["upstream_id"] != self.upstream_id:
            raise ScpcError(
                f"{path}: saved with another upstream checkpoint than {self.upstream_path}"
            )
        self.probe.load_trainable_state(state["probe"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        pr = state["progress"]
        self.step, self.epoch, self.batch = pr["step"], pr["epoch"], pr["batch"]
        self.window = dict(pr["window"])
        self.train_seconds = pr["train_seconds"]
        self.best = json.loads(state["best"])
        torch.set_rng_state(state["rng"].cpu())
        return True

    def save_probe(self, path: Path, scores: dict[str, float]) -> None:
        payload = {
            "format": PROBE_FORMAT,
            "task": self.task.name,
            "task_state": self.task.state(),
            "config": dump(self.cfg),
            "upstream_path": self.upstream_path,
            "upstream_id": self.upstream_id,
            "layers": self.probe.upstream.layers,
            "step": self.step,
            "scores": json.dumps(scores),
            "git_commit": git_commit(),
            **self.probe.trainable_state(),
        }
        save_torch(payload, path)

    def _train_iter(self, plan: list[list[int]]):
        """(indices, wavs or None) of the epoch's batches from self.batch on."""
        todo = plan[self.batch :]
        if not self.live_train:
            for batch in todo:
                yield batch, None
            return
        augment = type(self.task).augment is not Task.augment
        ds = sdata.AudioDataset(
            self.splits["train"], self.task if augment else None, self.t["seed"], self.epoch
        )
        loader = torch.utils.data.DataLoader(
            ds, batch_sampler=todo, num_workers=self.t["num_workers"], collate_fn=sdata.collate
        )
        yield from loader

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.task.higher_is_better:
            return value > self.best["value"]
        return value < self.best["value"]

    def _evaluate_and_keep(self) -> None:
        split = self.eval_split
        scores, loss = self.evaluate(split)
        value = scores[self.task.metric]
        improved = self._better(value)
        if improved:
            self.best = {"step": self.step, "value": value, "scores": scores}
            self.save_probe(self.out / "dev-best.ckpt", scores)
        self.metrics.append(
            split=split,
            step=self.step,
            epoch=self.epoch,
            loss=loss if loss is not None else "",
            **{self.task.metric: value},
        )
        extra = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != self.task.metric)
        self.log(
            f"step {self.step}: {split} {self.task.metric} {value:.2f}"
            + (f", loss {loss:.4f}" if loss is not None else "")
            + (f" ({extra})" if extra else "")
            + (" (best so far)" if improved else "")
        )

    def fit(self, until: int | None = None) -> dict[str, Any] | None:
        """Train to ``max_steps`` and score the best head on test; returns results.json's
        content. With ``until``, stop after that many steps (saving last.ckpt) and return None."""
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.restore()
        if resumed:
            self.metrics.truncate(self.step)
        else:  # a fresh start: nothing of an earlier run may pass for this one's
            for name in ("metrics.csv", "dev-best.ckpt", "results.json", "curves.png"):
                (self.out / name).unlink(missing_ok=True)
        with atomic_write(self.out / "config.yaml") as f:
            f.write(dump(self.cfg))
        t = self.t
        p = self.probe
        n_train = sum(x.numel() for x in p.parameters() if x.requires_grad)
        layers = p.upstream.layers
        self.log(
            f"{'resuming at step ' + str(self.step) if resumed else 'starting'}: task "
            f"{self.task.name}, upstream {self.upstream_path} "
            f"({'fine-tuned' if p.upstream.finetune else 'frozen'}, "
            f"{'layer ' + str(layers[0]) if self.cfg['featurizer']['layer'] is not None else 'weighted sum of layers ' + str(layers)}, "
            f"{p.upstream.output_size} dims, {p.upstream.downsample_rate} samples/frame), "
            f"{len(self.splits['train'])} training examples, {n_train:,} trainable parameters, "
            f"lr {t['lr']:g}, {self.device}"
        )
        stop = min(t["max_steps"], until) if until is not None else t["max_steps"]
        if self.step < stop:
            with StopSignals() as signals:
                self._train(self.lengths("train"), stop, signals)
        if self.step < t["max_steps"]:
            return None
        plot_curves(self.metrics, self.out / "curves.png", self.task.metric)
        return self.finish()

    def _train(self, lengths: list[float], stop: int, signals: StopSignals) -> None:
        t = self.t
        accum = t["accumulate"]
        bar = tqdm(
            total=t["max_steps"],
            initial=self.step,
            desc=f"{self.task.name} train",
            unit="step",
            disable=self.quiet,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
            file=sys.stderr,
        )
        self.probe.train()
        micro = 0
        tic = time.perf_counter()
        while self.step < stop:
            plan = epoch_plan(lengths, t["batch_size"], 1, t["seed"], self.epoch)
            self._plan_len = len(plan)
            if not plan:
                raise ScpcError(
                    f"task {self.task.name}: {len(lengths)} training examples do not fill one "
                    f"batch of {t['batch_size']}"
                )
            for indices, wavs in self._train_iter(plan):
                b = self.batch
                seed = mix(t["seed"], self.epoch, b)
                torch.manual_seed(seed)
                size = [len(w) for w in wavs] if wavs is not None else [lengths[i] for i in indices]
                order = sorted(range(len(indices)), key=lambda k: -size[k])
                examples = [self.splits["train"][indices[k]] for k in order]
                wavs = [wavs[k] for k in order] if wavs is not None else None
                hidden, lens = self.hidden("train", examples, wavs)
                feats = self.probe.featurizer(hidden, lens)
                if self.specaug is not None:
                    feats = self.specaug(feats, lens, torch.Generator().manual_seed(seed))
                with self._autocast():
                    loss = self.task.loss(self.probe.head, feats, lens, examples)
                if not torch.isfinite(loss):
                    raise ScpcError(f"non-finite training loss at step {self.step}; lower train.lr")
                self.scaler.scale(loss / accum).backward()
                self.window["loss"] += float(loss.detach())
                self.window["n"] += 1
                self.batch += 1
                micro += 1
                if micro % accum:
                    continue
                lr = self._optimizer_step()
                self.train_seconds += time.perf_counter() - tic
                tic = time.perf_counter()
                # no refresh of its own: a log file gets a line per mininterval, not per step
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
                bar.update(1)
                if self.step % t["log_every"] == 0:
                    self.metrics.append(
                        split="train",
                        step=self.step,
                        epoch=self.epoch,
                        loss=self.window["loss"] / max(self.window["n"], 1),
                        lr=lr,
                    )
                    self.window = {"loss": 0.0, "n": 0}
                evaluated = self.step % t["eval_every"] == 0 or self.step == t["max_steps"]
                if evaluated:
                    self._evaluate_and_keep()
                    plot_curves(self.metrics, self.out / "curves.png", self.task.metric)
                    tic = time.perf_counter()
                if evaluated or self.step % t["save_every"] == 0 or self.step >= stop:
                    self.save_last()
                if signals.requested:
                    bar.close()
                    state = self.out / "last.ckpt"
                    stop_training(
                        signals.requested,
                        self.step,
                        f"step {self.step}",
                        self.save_last,
                        state,
                        self.log,
                    )
                if self.step >= stop:
                    break
            else:
                self.epoch += 1
                self.batch = 0
                continue
            break
        bar.close()

    def _optimizer_step(self) -> float:
        lr = self._set_lr()
        params = [x for x in self.probe.parameters() if x.requires_grad]
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(
            params, self.t["clip"] if self.t["clip"] is not None else math.inf
        )
        if torch.isfinite(norm):
            self.scaler.step(self.optimizer)
        else:
            self.log(f"step {self.step}: gradient norm is {float(norm)}; step skipped")
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return lr

    def finish(self) -> dict[str, Any]:
        assert self.best is not None
        probe = load_probe_file(self.out / "dev-best.ckpt")
        self.probe.load_trainable_state(probe)
        if self.task.has_dev:
            test, _ = self.evaluate("test")
            dev = self.best["scores"]
        else:
            test, dev = self.best["scores"], None
        value = test[self.task.metric]
        p = self.probe
        results = {
            "task": self.task.name,
            "metric": self.task.metric,
            "higher_is_better": self.task.higher_is_better,
            "value": value,
            "test": test,
            "dev": dev,
            "selected_on": self.eval_split,
            "best_step": self.best["step"],
            "steps": self.step,
            "upstream": self.upstream_path,
            "upstream_name": upstream_name(self.upstream_path),
            "finetune": p.upstream.finetune,
            "layer": self.cfg["featurizer"]["layer"],
            "layers": p.upstream.layers,
            "layer_weights": p.featurizer.layer_weights(),
            "cmvn": p.featurizer.cmvn,
            "lr": self.t["lr"],
            "train_seconds": round(self.train_seconds, 1),
            "data": self.dirs,
        }
        with atomic_write(self.out / "results.json") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        self.log(summary_line(results, self.out), echo=False)
        return results


def summary_line(results: dict[str, Any], out: str | os.PathLike) -> str:
    dev = results.get("dev")
    metric = results["metric"]
    extra = f"dev {dev[metric]:.2f}, " if dev else ""
    return (
        f"{results['task']} {results['upstream_name']}: {metric} {results['value']:.2f} "
        f"(test; {extra}step {results['best_step']}, lr {results['lr']:g}) {out}"
    )


# ---------------------------------------------------------------------------- evaluation


def load_probe_file(path: str | os.PathLike) -> dict[str, Any]:
    return load_torch(path, PROBE_FORMAT, "a SUPERB probe checkpoint (dev-best.ckpt)")


def evaluate_probe(
    probe_path: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    upstream_path: str | os.PathLike | None = None,
    device: str = "auto",
    root: str | os.PathLike = ".",
    quiet: bool = False,
) -> dict[str, float]:
    """Scores of a saved probe (dev-best.ckpt) on one split of its config, or on ``data_dir``."""
    import yaml

    payload = load_probe_file(probe_path)
    task = make_task(payload["task"])
    task.set_state(payload["task_state"])
    cfg = yaml.safe_load(payload["config"])
    cfg["train"]["device"] = device
    upstream_path = upstream_path or payload["upstream_path"]
    if checkpoint_id(upstream_path) != payload["upstream_id"]:
        raise ScpcError(f"{upstream_path}: not the upstream checkpoint {probe_path} was trained on")
    dev = resolve_device(device)
    probe = build_probe(task, cfg, upstream_path, dev)
    probe.load_trainable_state(payload)
    dirs = {k: str(v if Path(v).is_absolute() else Path(root) / v) for k, v in cfg["data"].items()}
    if data_dir is not None:
        if split not in dirs:
            raise ScpcError(
                f"{probe_path}: its config has no data.{split} to replace with {data_dir}"
            )
        dirs[split] = str(data_dir)
    # load() relearns labels from the training data; the saved ones are put back after it
    examples = task.load(dirs, cfg["task"]).get(split)
    if not examples:
        raise ScpcError(f"{probe_path}: task {task.name} has no {split} split")
    task.set_state(payload["task_state"])
    runner = Runner(task, cfg, probe, {split: examples}, dirs, dev, None, quiet)
    scores, _ = runner.evaluate(split)
    return scores
