"""The SUPERB trainer: a task's head on a frozen (or fine-tuned) upstream, SUPERB's protocol.

The config is :mod:`scpc.downstream.config`'s. Training is counted in optimiser steps
(``max_steps``), with gradient accumulation and clipping; every ``eval_every_steps`` steps
the head is scored on dev and the best one is kept (``dev-best.ckpt``);
at the end that head is scored on test (``results.json``). A task without a dev set (ASV) is
scored on test at every evaluation and the best score is reported, as SUPERB does.

Exact resumption: an epoch's batches depend on (seed, epoch) only and every micro-batch
seeds its randomness from (seed, epoch, batch), so a run killed at any point and started
again (from ``last.ckpt``, written at step boundaries) takes the same steps as one that was
never interrupted.

Run directory: ``config.yaml`` (the resolved config), ``train.log``, ``metrics.csv``, ``tb/``
(the same as TensorBoard events, and ``tb/layer_weights``: the weighted sum's weights at every
evaluation), ``curves.png``, ``last.ckpt``, ``dev-best.ckpt``, ``results.json`` and ``cache/``
(frozen upstream outputs that did not fit in memory).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from scpc.config import Config, dump
from scpc.data.batch_plan import bucketed_plan, epoch_plan
from scpc.downstream import data as sdata
from scpc.downstream.config import comparable, upgrade_comparable
from scpc.downstream.probe import (
    PROBE_FORMAT,
    TrainableParts,
    build_probe,
    load_probe_file,
    upstream_name,
)
from scpc.downstream.runner import Runner
from scpc.downstream.task import Task
from scpc.errors import ScpcError
from scpc.io import atomic_write, save_torch
from scpc.models.checkpoint import checkpoint_id
from scpc.models.inference import resolve_device
from scpc.nn import specaug
from scpc.nn.amp import grad_scaler
from scpc.progress import progress_bar
from scpc.train.metrics import Curve, MetricsLog, plot_curves, points
from scpc.train.run_log import RunLog
from scpc.train.schedule import lr_factor, make_optimizer
from scpc.train.seeds import mix
from scpc.train.state import TrainingState, git_commit
from scpc.train.stop_signals import StopSignals, stop_training

STATE_FORMAT = "scpc-superb-state-1"


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
        self.scaler = grad_scaler(self.device, self.amp_dtype)
        self.optimizer = self._optimizer()
        columns = ("split", "step", "epoch", "loss", task.metric, "lr")
        self.metrics = MetricsLog(self.out / "metrics.csv", columns, tensorboard=self.out / "tb")
        self.state = TrainingState(self.out / "last.ckpt", STATE_FORMAT, "a SUPERB training state")
        self._run_log = RunLog(self.out / "train.log", quiet=self.quiet)
        self.step = self.epoch = self.batch = 0
        self.best: dict[str, Any] | None = None
        self.window = {"loss": 0.0, "n": 0}
        self.train_seconds = 0.0
        self._plan_len = 1 << 62  # the current epoch's number of batches

    def log(self, message: str, echo: bool = True) -> None:
        self._run_log(message, echo)

    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.t
        p = self.probe
        groups = [{"params": [*p.featurizer.parameters(), *p.head.parameters()], "scale": 1.0}]
        if p.upstream.finetune:
            scale = (t["upstream_learning_rate"] or t["learning_rate"]) / t["learning_rate"]
            groups.append({"params": list(p.upstream.model.parameters()), "scale": scale})
        return make_optimizer(groups, t)

    def _set_lr(self) -> float:
        """The base rate of this step; each parameter group gets it times its scale."""
        lr = self.t["learning_rate"] * lr_factor(self.step, self.t, self.t["max_steps"])
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("scale", 1.0)
        return lr

    def _cache(self) -> sdata.FeatureCache | sdata.TableFeatures | None:
        if isinstance(self.cache, sdata.TableFeatures):  # precomputed features: no copy
            return self.cache
        if self.probe.upstream.finetune or self.t["cache"] == "none":
            return None
        directory = self.t["cache_dir"] or self.out / "cache"
        key = sdata.upstream_key(self.upstream_id, self.probe.upstream.layers)
        return sdata.FeatureCache(
            self.t["cache"], directory, key, self.t["cache_memory_gb"] * 2**30
        )

    def _modules(self) -> dict[str, Any]:
        return {
            "probe": TrainableParts(self.probe),
            "optimizer": self.optimizer,
            "scaler": self.scaler,
        }

    def save_last(self) -> None:
        progress = {
            "step": self.step,
            # at an epoch's end, resume at the start of the next one
            "epoch": self.epoch + (self.batch >= self._plan_len),
            "batch": self.batch if self.batch < self._plan_len else 0,
            "window": dict(self.window),
            "train_seconds": self.train_seconds,
            "best": json.dumps(self.best),
        }
        identity = {"config": comparable(self.cfg), "upstream_id": self.upstream_id}
        self.state.save(self._modules(), progress, identity)

    def restore(self) -> bool:
        saved = self.state.restore(
            self._modules(),
            {
                "config": (
                    comparable(self.cfg),
                    f"saved with another config (see {self.out / 'config.yaml'}); "
                    "use another --out or remove the directory to start afresh",
                ),
                "upstream_id": (
                    self.upstream_id,
                    f"saved with another upstream checkpoint than {self.upstream_path}",
                ),
            },
            self.device,
            upgrade=_upgrade_state,
        )
        if saved is None:
            return False
        self.step, self.epoch, self.batch = saved["step"], saved["epoch"], saved["batch"]
        self.window = dict(saved["window"])
        self.train_seconds = saved["train_seconds"]
        self.best = json.loads(saved["best"])
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
        weights = self.probe.featurizer.layer_weights()
        if len(weights) > 1:  # the learnt weighted sum of the upstream's layers
            layers = self.probe.upstream.layers
            self.metrics.scalars(
                "layer_weights", self.step, {f"layer{k}": w for k, w in zip(layers, weights)}
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
        if resumed:  # rows written after the saved state come again
            self.metrics.keep(lambda r: int(r["step"]) <= self.step)
        else:  # a fresh start: nothing of an earlier run may pass for this one's
            self.metrics.remove()
            for name in ("dev-best.ckpt", "results.json", "curves.png"):
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
            f"lr {t['learning_rate']:g}, {self.device}"
        )
        stop = min(t["max_steps"], until) if until is not None else t["max_steps"]
        if self.step < stop:
            with StopSignals() as signals:
                self._train(self.lengths("train"), stop, signals)
        self.metrics.close()
        if self.step < t["max_steps"]:
            return None
        self._plot()
        return self.finish()

    def _train(self, lengths: list[float], stop: int, signals: StopSignals) -> None:
        t = self.t
        accum = t["accumulate_grad_batches"]
        bar = progress_bar(
            total=t["max_steps"],
            initial=self.step,
            desc=f"{self.task.name} train",
            unit="step",
            disable=self.quiet,
        )
        self.probe.train()
        micro = 0
        tic = time.perf_counter()
        while self.step < stop:
            if t["batch_seconds"]:
                budget = t["batch_seconds"] / self.length_seconds("train")
                plan = bucketed_plan(lengths, budget, t["seed"], self.epoch)
            else:
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
                    raise ScpcError(
                        f"non-finite training loss at step {self.step}; lower train.learning_rate"
                    )
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
                if self.step % t["log_every_steps"] == 0:
                    self.metrics.append(
                        split="train",
                        step=self.step,
                        epoch=self.epoch,
                        loss=self.window["loss"] / max(self.window["n"], 1),
                        lr=lr,
                    )
                    self.window = {"loss": 0.0, "n": 0}
                evaluated = self.step % t["eval_every_steps"] == 0 or self.step == t["max_steps"]
                if evaluated:
                    self._evaluate_and_keep()
                    self._plot()
                    tic = time.perf_counter()
                if evaluated or self.step % t["checkpoint_every_steps"] == 0 or self.step >= stop:
                    self.save_last()
                if signals.requested:
                    bar.close()
                    state = self.out / "last.ckpt"
                    stop_training(
                        signals.requested,
                        step=self.step,
                        where=f"step {self.step}",
                        save=self.save_last,
                        state=state,
                        log=self.log,
                    )
                if self.step >= stop:
                    break
            else:
                self.epoch += 1
                self.batch = 0
                continue
            break
        bar.close()

    def _plot(self) -> None:
        """Loss (train, dev) and the eval metric against optimiser steps."""
        rows, metric = self.metrics.rows(), self.task.metric
        losses = [
            Curve("train", points(rows, "step", "loss", split="train")),
            Curve("dev", points(rows, "step", "loss", split="dev"), "o-"),
        ]
        scores = [Curve(s, points(rows, "step", metric, split=s), "o-") for s in ("dev", "test")]
        plot_curves(self.out / "curves.png", [("loss", losses), (f"{metric} (%)", scores)])

    def _optimizer_step(self) -> float:
        lr = self._set_lr()
        params = [x for x in self.probe.parameters() if x.requires_grad]
        self.scaler.unscale_(self.optimizer)
        # the norm is taken even without clipping: a non-finite one skips the step
        norm = torch.nn.utils.clip_grad_norm_(params, self.t["grad_clip_norm"] or math.inf)
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
            "lr": self.t["learning_rate"],
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


def _upgrade_state(state: dict[str, Any]) -> dict[str, Any]:
    """A state saved by an older scpc: config keys renamed, ``best`` kept with the progress."""
    progress = dict(state["progress"])
    if "best" in state:
        progress["best"] = state["best"]
    return {**state, "config": upgrade_comparable(state["config"]), "progress": progress}
