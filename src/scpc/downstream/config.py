"""The SUPERB probe config: every default, in one place (``conf/superb.<task>[.mini].yaml``
overlays them).

Five sections: ``task`` (read by the task, over its class's ``defaults``), ``data`` (split ->
Kaldi data dir), ``train``, ``featurizer`` and ``upstream``, plus ``specaug``. The ``train``
keys shared with the other trainers have their names (``learning_rate``, ``grad_clip_norm``,
``accumulate_grad_batches``, ``checkpoint_every_steps``, ``log_every_steps``; ``batch_size``
counts utterances per micro-batch); older spellings are read with a notice.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from scpc.config import (
    Config,
    dump,
    merge,
    read_yaml,
    rename_deprecated,
    set_dotted,
    upgrade_dump,
    yaml_floats,
)
from scpc.downstream.task import Task
from scpc.errors import ScpcError
from scpc.nn.amp import CHOICES as AMP_CHOICES
from scpc.nn.specaug import DEFAULTS as SPECAUG_DEFAULTS

TRAIN_DEFAULTS: Config = {
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "amp": "off",  # off | auto | bf16 | fp16 (scpc.nn.amp); worth it when fine-tuning
    "optimizer": "adam",  # adam | adamw | sgd
    "learning_rate": 1.0e-4,  # SUPERB tunes only this, per upstream and task (local/superb_lr_sweep.sh)
    "upstream_learning_rate": None,  # fine-tuning: the upstream's learning rate; null: learning_rate
    "weight_decay": 0.0,
    "momentum": 0.9,  # sgd only
    "warmup_steps": 0,
    "lr_decay": "none",  # none | linear | cosine | exponential, after warm-up
    "decay_steps": None,  # null: until max_steps
    "final_lr_ratio": 0.01,
    "batch_size": 32,  # utterances per micro-batch (and process)
    "batch_seconds": None,  # instead: padded audio seconds per micro-batch, in length buckets
    "accumulate_grad_batches": 1,  # micro-batches per optimiser step
    "max_steps": 200000,  # optimiser steps
    "grad_clip_norm": 1.0,  # clip the global gradient norm; 0 or null: none. A non-finite norm skips the step
    "eval_every_steps": 2000,  # steps between evaluations on dev (and the dev-best check)
    "eval_batch_size": 32,
    "log_every_steps": 100,  # steps per training row of metrics.csv
    "checkpoint_every_steps": 500,  # steps between writes of last.ckpt (also after every evaluation)
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
    "specaug": SPECAUG_DEFAULTS,
}
CHOICES = {
    "amp": AMP_CHOICES,
    "optimizer": ("adam", "adamw", "sgd"),
    "lr_decay": ("none", "linear", "cosine", "exponential"),
    "cache": ("auto", "memory", "disk", "none"),
}
# keys that change how a run executes, not what it computes: free to differ on resumption
RUNTIME_KEYS = ("device", "cache", "cache_dir", "cache_memory_gb", "num_workers")
# keys renamed to the spelling every trainer uses (old -> new); frozen configs may have the old
RENAMED = {
    "train.lr": "train.learning_rate",
    "train.upstream_lr": "train.upstream_learning_rate",
    "train.clip": "train.grad_clip_norm",
    "train.accumulate": "train.accumulate_grad_batches",
    "train.eval_every": "train.eval_every_steps",
    "train.log_every": "train.log_every_steps",
    "train.save_every": "train.checkpoint_every_steps",
}


def load_config(
    path: str | os.PathLike, task: Task, overrides: dict[str, Any] | None = None
) -> Config:
    """A superb YAML over :data:`DEFAULTS` (and the task's ``defaults``), then ``overrides``
    (dotted keys, e.g. ``{"train.learning_rate": 1e-3}``); unknown keys and wrong types are
    errors; keys under an older name (:data:`RENAMED`) are read under the current one."""
    raw = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return complete_config(raw, task, str(path))


def complete_config(raw: Config, task: Task, source: str) -> Config:
    raw = rename_deprecated(raw, RENAMED, source)
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
    for key in (
        "batch_size",
        "accumulate_grad_batches",
        "max_steps",
        "eval_every_steps",
        "log_every_steps",
        "checkpoint_every_steps",
    ):
        if not isinstance(t[key], int) or t[key] < 1:  # null too
            raise ScpcError(f"{source}: train.{key} must be at least 1, not {t[key]!r}")
    if t["upstream_learning_rate"] is not None:
        key = "train.upstream_learning_rate"
        t["upstream_learning_rate"] = _float(t["upstream_learning_rate"], key, source)
    if cfg["featurizer"]["layer"] is not None and not isinstance(cfg["featurizer"]["layer"], int):
        raise ScpcError(f"{source}: featurizer.layer must be an integer or null")
    return cfg


def _float(value: Any, key: str, source: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ScpcError(f"{source}: {key} must be a number, not {value!r}") from None


def comparable(cfg: Config) -> str:
    """What a resumed or repeated run must share with the saved one: the config but for the
    keys that only say how it runs (:data:`RUNTIME_KEYS`)."""
    cfg = copy.deepcopy(cfg)
    for key in RUNTIME_KEYS:
        cfg["train"].pop(key, None)
    return dump(cfg)


def upgrade_comparable(text: str) -> str:
    """:func:`comparable` of a config saved by an older scpc (before :data:`RENAMED`)."""
    return upgrade_dump(text, RENAMED)
