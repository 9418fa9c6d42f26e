"""The baseline's config: every default, in one place; ``conf/baseline*.yaml`` overlay them.

The values are the reference's (``asr-baseline.py`` and its templates): BPE of 2000 pieces,
3-frame stacking, a 2-layer BiLSTM of 1024 units per direction, AdamW with batches of 32,
early stopping on the dev token error rate, a short phase (the 2000 shortest utterances, lr
1e-3, no dropout, no SpecAugment) and a full phase (every utterance, lr 1e-4, dropout 0.1,
SpecAugment). The decoding grid is the reference's (LM weight 1/a for a in 1..4, word bonus
0..3), searched on dev only when there is an LM (without one they change nothing).

A baseline directory freezes its config in ``config.yaml`` on first use. Later runs may
change only the ``decode`` and ``lm`` sections (they do not change the trained model);
anything else is refused, so that a directory always means one model.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from scpc.config import (
    Config,
    diff,
    dump,
    merge,
    read_yaml,
    rename_deprecated,
    set_dotted,
    yaml_floats,
)
from scpc.errors import ScpcError
from scpc.io import atomic_write
from scpc.nn.amp import CHOICES as AMP_CHOICES

PHASES = ("short", "full")
# keys renamed to the spelling every trainer uses (old -> new); frozen configs may have the old
RENAMED = {
    "train.clip": "train.grad_clip_norm",
    "train.save_every": "train.checkpoint_every_steps",
}
# sections that may change in a frozen config: how to decode, not what was trained
DECODE_SECTIONS = ("decode", "lm")

DEFAULTS: Config = {
    "bpe": {
        "vocab_size": 2000,  # SentencePiece BPE pieces; the CTC blank is one more output
        "character_coverage": 1.0,  # every character of the BPE text gets a piece
        "input_sentence_size": 10_000_000,  # sentences sampled from a large BPE text (0: all)
    },
    "model": {
        # frames concatenated per CTC step: 3 x 10 ms (every scpc upstream is 100 Hz) = 30 ms
        "stack": 3,
        "hidden_size": 1024,  # LSTM units per direction (2048 in all, as the reference)
        "num_layers": 2,
    },
    "train": {
        "seed": 0,
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "batch_size": 32,  # utterances per micro-batch (and step: no accumulation here)
        # instead: padded audio seconds per step, in batches of similar lengths (duration
        # buckets); frames convert to seconds by the training set's duration over its frames
        "batch_seconds": None,
        "amp": "off",  # off | auto | bf16 | fp16 (scpc.nn.amp): training forward passes
        "eval_batch_size": 32,
        "optimizer": "adamw",  # adam | adamw | sgd
        "weight_decay": 0.01,
        "momentum": 0.9,  # sgd only
        "grad_clip_norm": 0.0,  # clip the global gradient norm; 0 or null: none (as the reference)
        # an epoch counts as an improvement when the dev token error rate (%) falls by more
        # than this below the best so far (the reference's 0.001 as a fraction)
        "early_stopping_threshold": 0.1,
        "early_stopping_patience": 10,  # epochs without improvement before stopping
        "early_stopping_burn_in": 20,  # epochs before early stopping may stop
        "checkpoint_every_steps": 500,  # steps between writes of last.ckpt (and every epoch's end)
    },
    "short": {  # phase 1: the shortest utterances, from a random initialisation
        "utterances": 2000,  # the N shortest training utterances; null: all
        "max_epochs": 1000,
        "learning_rate": 1.0e-3,
        "dropout": 0.0,
        "specaug": False,
    },
    "full": {  # phase 2: every utterance, from the short phase's best model
        "utterances": None,
        "max_epochs": 1000,
        "learning_rate": 1.0e-4,
        "dropout": 0.1,
        "specaug": True,
    },
    "specaug": {  # pydrobert's SpecAugment as the reference sets it (masks zero normalised frames)
        "time_warp": 80,  # frames the warp centre may move (before stacking); 0: none
        "num_time_mask": 20,  # time masks: at most this many ...
        "num_time_mask_proportion": 0.04,  # ... and at most this fraction of the frames
        "max_time_mask": 100,  # a time mask's width: at most this many frames ...
        "max_time_mask_proportion": 0.04,  # ... and this fraction of the frames
        "num_freq_mask": 2,
        "max_freq_mask": None,  # a channel mask's width: at most this many (null: all) ...
        "max_freq_mask_proportion": 0.04,  # ... and this fraction of the channels
    },
    "decode": {
        "beam": 100,  # beam width (the reference's pyctcdecode default)
        # a frame extends prefixes only with tokens within this many nats of its best class
        "prune": 10.0,
        "lm_weights": [1.0, 0.5, 0.3333, 0.25],  # grid tuned on dev (natural-log LM scores)
        "word_bonuses": [0.0, 1.0, 2.0, 3.0],
        "batch_size": 32,  # utterances per forward pass
    },
    "lm": {
        "order": 4,  # word n-gram order; 0: no LM (no beam+LM column)
    },
}
CHOICES = {"optimizer": ("adam", "adamw", "sgd"), "amp": AMP_CHOICES}
# keys added after baseline states were first saved, at the value that changes nothing: a
# state saved before them compares equal (scpc.baseline.train.trained_config)
NEUTRAL = {"batch_seconds": None, "amp": "off"}


def complete(raw: Config, source: str) -> Config:
    """``raw`` over :data:`DEFAULTS`, checked: unknown keys and wrong types are errors; keys
    under an older name (:data:`RENAMED`) are read under the current one."""
    raw = rename_deprecated(raw, RENAMED, source)
    cfg = merge(DEFAULTS, yaml_floats(raw, DEFAULTS), source)
    t = cfg["train"]
    for key, choices in CHOICES.items():
        if t[key] not in choices:
            raise ScpcError(f"{source}: train.{key} must be one of {', '.join(choices)}")
    positive = [("bpe", "vocab_size"), ("model", "stack"), ("model", "hidden_size")]
    positive += [("model", "num_layers"), ("train", "batch_size"), ("train", "eval_batch_size")]
    positive += [("train", "checkpoint_every_steps"), ("decode", "beam"), ("decode", "batch_size")]
    positive += [(p, "max_epochs") for p in PHASES]
    for section, key in positive:
        if not isinstance(cfg[section][key], int) or cfg[section][key] < 1:  # null too
            raise ScpcError(f"{source}: {section}.{key} must be at least 1")
    seconds = t["batch_seconds"]
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0
    ):
        raise ScpcError(f"{source}: train.batch_seconds must be a positive number or null")
    for p in PHASES:
        n = cfg[p]["utterances"]
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ScpcError(f"{source}: {p}.utterances must be a positive integer or null")
        if not 0.0 <= cfg[p]["dropout"] < 1.0:
            raise ScpcError(f"{source}: {p}.dropout must lie in [0, 1)")
    s = cfg["specaug"]
    if s["max_freq_mask"] is not None and not isinstance(s["max_freq_mask"], int):
        raise ScpcError(f"{source}: specaug.max_freq_mask must be an integer or null")
    for key in ("lm_weights", "word_bonuses"):
        values = cfg["decode"][key]
        if not values or not all(isinstance(v, (int, float)) for v in values):
            raise ScpcError(f"{source}: decode.{key} must be a non-empty list of numbers")
        cfg["decode"][key] = [float(v) for v in values]
    if cfg["lm"]["order"] < 0:
        raise ScpcError(f"{source}: lm.order must be 0 (no LM) or more")
    return cfg


def load(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Config:
    """A baseline YAML, then ``overrides`` (dotted keys), completed with the defaults."""
    raw = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return complete(raw, str(path))


def freeze(cfg: Config, path: str | os.PathLike) -> Config:
    """Write ``cfg`` to ``path``, or check it against the config frozen there.

    The ``decode`` and ``lm`` sections are taken from ``cfg`` (and rewritten); a difference
    anywhere else is an error that shows it.
    """
    path = Path(path)
    if path.is_file():
        old = complete(read_yaml(path), str(path))
        trained, wanted = trained_part(old), trained_part(cfg)
        if trained != wanted:
            raise ScpcError(
                f"{path}: this baseline was trained with another config (remove its directory "
                "or choose another one):\n" + diff(trained, wanted, str(path), "requested")
            )
        merged = copy.deepcopy(old)
        merged.update({k: cfg[k] for k in DECODE_SECTIONS})
        cfg = merged
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(dump(cfg))
    return cfg


def read_frozen(bl_dir: str | os.PathLike) -> Config:
    """The config frozen in a baseline directory (``scpc-baseline init`` writes it)."""
    path = Path(bl_dir) / "config.yaml"
    if not path.is_file():
        raise ScpcError(f"{path}: no such file (start the baseline with scpc-baseline init)")
    return complete(read_yaml(path), str(path))


def trained_part(cfg: Config) -> Config:
    """The sections that define the trained model (not how it is decoded)."""
    return {k: v for k, v in cfg.items() if k not in DECODE_SECTIONS}
