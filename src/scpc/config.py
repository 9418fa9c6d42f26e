"""Model configs: the full default tree, overlays from conf/model.<name>.yaml, checking.

The defaults below are the one source of truth; ``scpc-config defaults`` prints them.
A frozen ``exp/<model>/version_N/model.yaml`` is this tree with the overlay applied and the
front-end config (``conf/feats/<feat_type>.json``) copied in, so that the experiment keeps
its meaning when ``conf/`` changes. Differences from the reference scpc are on purpose:
training data are shuffled by default, runs are seeded, the CSA has a position option,
BEST-RQ masks whole frames, and the optimiser has a schedule and clipping.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import math
import os
import sys
from typing import Any

import yaml

from scpc.errors import ScpcError

Config = dict[str, Any]

_ATTENTION = {
    "num_layers": 1,
    "num_heads": 8,
    "dim_feedforward": 2048,
    "max_width": None,  # frames a query may see (itself included); null: unbounded
    "position": "none",  # none | alibi | sinusoid (absolute, added to the input; TERA's)
    "activation": "relu",  # relu | gelu (feed-forward nonlinearity)
    "share_layers": False,  # one layer applied num_layers times (AALBERT)
}

DEFAULTS: Config = {
    "name": "",
    "system_description": "",
    "feat_type": "raw",  # conf/feats/<feat_type>.json: raw | raw-norm | fbank-41 | fbank-80 | fbank-128
    "frontend": None,  # filled in from conf/feats/<feat_type>.json when the config is frozen
    # on_the_fly: training reads the data dir's audio and computes the front-end in the data
    # workers; precomputed: run.sh writes feature dirs first (steps/make_feats.sh), same batches
    "feats": "on_the_fly",
    "input_norm": "none",  # none | utterance (per-utterance CMVN of the features, TERA's input)
    "train_part": "100",  # LibriSpeech hours (100 | 460 | 960); the recipe reads it
    "latent_type": "conv",  # conv | ff | id
    "context_type": "recur",  # recur | csa | sa | cconv | spiral | wav2vec2 | id
    "conv": {"output_size": 512, "norm_type": "none"},  # norm: none | batch | channel | instance
    "ff": {"output_size": 256, "nonlin_type": "relu", "bias": True},
    "recur": {"output_size": 256, "num_layers": 1, "recurrent_type": "gru"},  # gru | lstm | rnn
    "csa": dict(_ATTENTION),
    "sa": dict(_ATTENTION),
    "cconv": {"output_size": 512, "num_layers": 1, "kernel_size": 8, "nonlin_type": "relu"},
    "spiral": {  # SPIRAL's encoder: conv downsampling, then pre-LN transformer layers, per block
        "blocks": [  # SPIRAL base: 40 ms then 80 ms frames from 10 ms input
            {
                # [out, kernel, stride(, activation)]; SPIRAL's TF-style "same" padding
                "convs": [[384, 5, 2], [512, 5, 2], [512, 1, 1, "none"]],
                "padding": "tf",
                "num_layers": 2,
                "num_heads": 8,
                "dim_feedforward": 2048,
            },
            {
                "convs": [[1536, 5, 2], [768, 1, 1, "none"]],
                "padding": "tf",
                "num_layers": 10,
                "num_heads": 12,
                "dim_feedforward": 3072,
            },
        ],
        "pos_conv_kernel": 128,  # wav2vec 2.0's convolutional relative position embedding
        "pos_conv_groups": 16,
        "layerdrop": 0.05,
    },
    "wav2vec2": {  # the wav2vec 2.0 / HuBERT encoder on the waveform (scpc.models.wav2vec2); HuBERT Base
        "conv_layers": [[512, 10, 5]]
        + [[512, 3, 2]] * 4
        + [[512, 2, 2]] * 2,  # [out, kernel, stride]
        "extractor_mode": "default",  # default (group norm after the first conv) | layer_norm
        "conv_bias": False,
        "embed_dim": 768,
        "num_layers": 12,
        "num_heads": 12,
        "ffn_dim": 3072,
        "layer_norm_first": False,  # pre-LN layers (the Large models)
        "conv_pos": 128,  # convolutional relative position embedding: kernel and groups
        "conv_pos_groups": 16,
        "layerdrop": 0.05,
    },
    "training": {
        # a best.ckpt (trained or imported by scpc-import) to continue: its encoder, architecture
        # and weights, replaces latent_type/context_type/input_norm; its front-end must be
        # this config's (feat_type). Not for spin, which names its own (spin_loss.init_checkpoint)
        "init_checkpoint": None,
        "seed": 0,
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "amp": "auto",  # auto (bf16 on a GPU that has it, else fp16; off on CPU) | bf16 | fp16 | off
        "batch_size": 4,  # utterances per process and step (before chunking)
        # padded audio seconds per step over all processes, in batches of similar lengths
        # (duration buckets); replaces batch_size; the same batches for any process count
        "batch_seconds": None,
        "shuffle": True,  # training order reshuffled every epoch (seeded)
        "num_workers": 0,  # data loader processes per training process
        # shards (steps/make_shards.sh): stream them (per-reader batches; shards may be
        # commands) or read local shards by index (the same batches as the data dir)
        "shard_access": "stream",
        "shuffle_buffer": 1000,  # utterances per reader when streaming shards
        "optimizer": "adam",  # adam | adamw | sgd
        "learning_rate": 2.0e-4,
        "weight_decay": 0.0,
        "momentum": 0.9,  # sgd only
        "warmup_steps": 0,  # linear warm-up from 0, in optimiser steps
        "lr_decay": "none",  # none | linear | cosine | exponential, after warm-up
        "decay_steps": None,  # steps over which the decay runs; null: until max_steps
        "final_lr_ratio": 0.01,  # learning rate at the end of the decay, relative
        "grad_clip_norm": None,  # clip the global gradient norm; null: no clipping
        "accumulate_grad_batches": 1,
        "dropout_prob": 0.0,  # latent, context and predictor dropout
        "max_epochs": 200,
        "max_steps": None,  # optimiser steps; null: no limit
        "early_stopping_threshold": None,  # minimum val-loss improvement; null: no early stop
        "early_stopping_patience": 10,  # epochs without such an improvement before stopping
        "checkpoint_every_steps": 50,  # last.ckpt interval inside an epoch
        # steps in a row whose loss or gradient is NaN/inf (each skipped, logged with its
        # utterances) before training stops, last.ckpt holding the last finite state
        "max_nonfinite_steps": 10,
        # also keep the inference model every E epochs as checkpoints/epoch<N>.ckpt, with its
        # training time (learning curves: local/zrc_run.sh --checkpoints); 0: none
        "keep_checkpoint_every_epochs": 0,
        "log_every_steps": 10,  # metrics.csv rows for training
        "chunking": {
            "policy": "fixed",  # fixed | none | ali
            "window_type": "causal",  # causal | symmetric | future
            "lobe_size": 20479,  # frames of the front-end's output (samples for raw)
            "pad_mode": "valid",  # valid (drop windows past the end) | constant | replicate
            "pad_constant": 0.0,
            "max_chunks": 8,  # per step, chosen at random when there are more; null: all
        },
        "loss_type": "cpc",  # cpc | best-rq | reconstruction (TERA, Mockingjay, AALBERT) | spiral | spin
        "cpc_loss": {
            "prediction_steps": 12,
            "gutted_steps": 0,
            "negative_samples": 128,
            # batch (shared, fast) | utterance (from the anchor's own) | anchor (M per anchor,
            # as the reference scpc and CPC_audio draw them; slow)
            "negatives": "batch",
            "offset": 0,
            "prediction_type": "ff",  # ff | recur | csa
            "prediction_width": None,  # csa predictor's attention width; null: unbounded
            "prediction_dropout_prob": 0.0,
            "averaging_penalty": 0.0,
            "speaker_embedding": False,  # add a learned per-speaker vector to the latents
        },
        "best_rq_loss": {
            "mask_prob": 0.01,
            "mask_width": 40,
            "noise_std": 0.1,
            "codebook_size": 8192,
            "codebook_dim": 16,
            "quantizer_seed": 0,
            "prediction_type": "ff",  # ff (linear) | csa (a causal transformer layer first)
        },
        "spiral_loss": {  # SPIRAL base (Speech-Backbones/SPIRAL); see scpc/objectives/spiral.py
            "projection_size": 256,
            "predictor_layers": 2,  # [Conv1d k5, BatchNorm, ReLU] layers before the linear one
            "temperature": 0.3,
            "negatives": 100,  # drawn from the same utterance's other frames
            "mask_prob": 0.5,  # student time masking (spans of mask_length frames)
            "mask_length": 20,
            "channel_mask_prob": 0.4,  # student channel masking
            "channel_mask_length": 20,
            "max_shift": 16,  # teacher padding on each side, in output frames: U{0..max_shift}
            "max_shift_ratio": 0.5,  # ... at most this fraction of the shortest utterance
            "ema_start": 0.995,  # teacher momentum: half cosine from start to end over the run
            "ema_end": 1.0,
            "teacher_train_mode": True,  # dropout and layerdrop in the teacher too
            "noise_dir": None,  # .wav/.flac noise for the student (multi-condition training)
            "noise_ratio": 0.5,  # fraction of utterances that get noise
            "snr_range": [0.0, 30.0],  # dB, uniform
        },
        "spin_loss": {  # Spin (vectominist/spin config/spin.yaml); see scpc/objectives/spin.py
            "init_checkpoint": None,  # the best.ckpt to continue (a waveform front-end)
            "trainable_layers": 2,  # the encoder's last layers that train; the rest is frozen
            "codebook_size": 256,
            "projection_size": 256,
            "temperature": 0.1,
            "sinkhorn_eps": 0.02,
            "sinkhorn_iters": 3,
            "formant_ratio_max": 1.4,  # speaker perturbation: formant ratio U[1, max] or 1/that
            "pitch_ratio_max": 2.0,  # pitch ratio U[1, max] or 1/that
            "eq_bands": 10,  # random parametric EQ (0: none)
            "eq_gain_db": 12.0,
        },
        "reconstruction_loss": {  # TERA's alterations (s3prl pretrain/tera); L1 on altered cells
            "time_mask_proportion": 0.15,  # of each utterance's frames, in blocks ...
            "time_mask_consecutive": 7,  # ... of this many frames (overlap allowed)
            "time_mask_policy": [0.8, 0.1, 0.1],  # per utterance: zero, random frames, unchanged
            "freq_mask_max": 0.2,  # one band of channels, width uniform in [0, this x C]; 0: off
            "noise_prob": 0.0,  # per batch: add Gaussian noise to every input frame; 0: off
            "noise_std": 0.2,
            "loss": "l1",  # l1 | mse
        },
    },
}

CHOICES: dict[str, tuple[Any, ...]] = {
    "feat_type": ("raw", "raw-norm", "fbank-41", "fbank-80", "fbank-128"),
    "feats": ("on_the_fly", "precomputed"),
    "latent_type": ("conv", "ff", "id"),
    "context_type": ("recur", "csa", "sa", "cconv", "spiral", "wav2vec2", "id"),
    "wav2vec2.extractor_mode": ("default", "layer_norm"),
    "conv.norm_type": ("none", "batch", "channel", "instance"),
    "ff.nonlin_type": ("relu", "sigmoid", "tanh", "none"),
    "cconv.nonlin_type": ("relu", "sigmoid", "tanh", "none"),
    "recur.recurrent_type": ("gru", "lstm", "rnn"),
    "csa.position": ("none", "alibi", "sinusoid"),
    "sa.position": ("none", "alibi", "sinusoid"),
    "sa.activation": ("relu", "gelu"),
    "csa.activation": ("relu", "gelu"),
    "input_norm": ("none", "utterance"),
    "training.reconstruction_loss.loss": ("l1", "mse"),
    "training.amp": ("auto", "bf16", "fp16", "off"),
    "training.shard_access": ("stream", "index"),
    "training.optimizer": ("adam", "adamw", "sgd"),
    "training.lr_decay": ("none", "linear", "cosine", "exponential"),
    "training.chunking.policy": ("fixed", "none", "ali"),
    "training.chunking.window_type": ("causal", "symmetric", "future"),
    "training.chunking.pad_mode": ("valid", "constant", "replicate"),
    "training.loss_type": ("cpc", "best-rq", "reconstruction", "spiral", "spin"),
    "training.cpc_loss.negatives": ("batch", "utterance", "anchor"),
    "training.cpc_loss.prediction_type": ("ff", "recur", "csa"),
    "training.best_rq_loss.prediction_type": ("ff", "csa"),
}

# keys whose value is free-form (not checked against the default's type)
_FREE = {"frontend"}


def defaults() -> Config:
    return copy.deepcopy(DEFAULTS)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Ranges of numeric keys by their last name, in every config (model, SUPERB, baseline): a value
# out of range fails when the config is read (scpc-config check), not hours into a run.
RANGES: dict[str, tuple[Any, str]] = {
    "learning_rate": (lambda v: _number(v) and v > 0, "a positive finite number"),
    "upstream_learning_rate": (lambda v: _number(v) and v > 0, "a positive finite number"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "grad_clip_norm": (lambda v: _number(v) and v >= 0, "a finite number >= 0 (0 or null: none)"),
    "batch_seconds": (lambda v: _number(v) and v > 0, "a positive number (or null)"),
    "dropout_prob": (lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "max_steps": (lambda v: v >= 0, "0 or more (or null)"),
    "warmup_steps": (lambda v: v >= 0, "0 or more"),
    "num_workers": (lambda v: v >= 0, "0 or more"),
    **{
        k: (lambda v: v >= 1, "at least 1")
        for k in (
            "batch_size",
            "eval_batch_size",
            "max_epochs",
            "accumulate_grad_batches",
            "checkpoint_every_steps",
            "eval_every_steps",
            "log_every_steps",
            "early_stopping_patience",
            "max_nonfinite_steps",
        )
    },
}


def _check(value: Any, default: Any, key: str, source: str) -> Any:
    value = _check_type(value, default, key, source)
    rule = RANGES.get(key.rsplit(".", 1)[-1])
    if rule is not None and value is not None and not isinstance(value, dict):
        ok, what = rule
        if not _number(value) or not ok(value):
            raise ScpcError(f"{source}: {key} must be {what}, not {value!r}")
    return value


def _check_type(value: Any, default: Any, key: str, source: str) -> Any:
    if key in _FREE:
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ScpcError(f"{source}: {key} must be a mapping, not {value!r}")
        return merge(default, value, source, key + ".")
    if key in CHOICES and value not in CHOICES[key]:
        raise ScpcError(
            f"{source}: {key} must be one of {', '.join(map(str, CHOICES[key]))}, not {value!r}"
        )
    if value is None or default is None:
        return value
    if isinstance(default, bool) != isinstance(value, bool):
        raise ScpcError(f"{source}: {key} must be true or false, not {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, str) and isinstance(value, (int, float)):
        return str(value)  # train_part: 100 means "100"
    if type(value) is not type(default) and not (
        isinstance(default, int) and isinstance(value, float) and value.is_integer()
    ):
        raise ScpcError(f"{source}: {key} must be a {type(default).__name__}, not {value!r}")
    return type(default)(value)


def merge(base: Config, overlay: Config, source: str, prefix: str = "") -> Config:
    """``base`` with ``overlay`` applied; an unknown key or a wrong type is an error naming
    ``source`` and the dotted key."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        dotted = prefix + str(key)
        if key not in base:
            close = difflib.get_close_matches(str(key), [str(k) for k in base], 1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            raise ScpcError(f"{source}: unknown config key {dotted}{hint}")
        out[key] = _check(value, base[key], dotted, source)
    return out


def set_dotted(raw: Config, dotted: str, value: Any) -> None:
    """Set ``raw[a][b][c] = value`` for ``dotted`` = ``a.b.c`` (a command-line override)."""
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ScpcError(f"{dotted}: {key} is not a section")
    node[last] = value


_NOTICED: set[tuple[str, str]] = set()  # (source, old key): one notice per process


def rename_deprecated(
    raw: Config, renames: dict[str, str], source: str, notice: bool = True
) -> Config:
    """A copy of ``raw`` with old spellings of keys (dotted, ``renames`` maps old to new) moved
    to their current names, so configs frozen by an older scpc keep working; each old key
    found gets a one-line notice on stderr. Both spellings at once are an error."""
    raw = copy.deepcopy(raw)
    for old, new in renames.items():
        *parents, last = old.split(".")
        node = raw
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            continue
        new_last = new.split(".")[-1]
        if new_last in node:
            raise ScpcError(f"{source}: {old} and {new} are one key; keep {new} only")
        items = list(node.items())  # renamed in place: a dump keeps its key order
        node.clear()
        node.update((new_last if k == last else k, v) for k, v in items)
        if notice and (source, old) not in _NOTICED:
            _NOTICED.add((source, old))
            print(f"{source}: {old} is deprecated; it is read as {new}", file=sys.stderr)
    return raw


def upgrade_dump(text: str, renames: dict[str, str]) -> str:
    """A config dumped by an older scpc (in a training state), with current key names."""
    return dump(rename_deprecated(yaml.safe_load(text), renames, "", notice=False))


def yaml_floats(raw: Config, defaults: Config) -> Config:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string: such strings become numbers where the
    default is a float."""
    out = {}
    for key, value in raw.items():
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(default, dict) and isinstance(value, dict):
            value = yaml_floats(value, default)
        elif isinstance(default, float) and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        out[key] = value
    return out


def read_yaml(path: str | os.PathLike) -> Config:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        # a ReaderError has no "problem" and says where in a second line: keep it to one
        why = " ".join(str(getattr(e, "problem", None) or getattr(e, "reason", None) or e).split())
        raise ScpcError(f"{path}:{where} invalid YAML ({why})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScpcError(f"{path}: expected a mapping of config keys")
    return data


def load(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Config:
    """A model config file, then ``overrides`` (dotted keys), checked and completed with the
    defaults."""
    raw = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return merge(DEFAULTS, raw, str(path))


def dump(config: Config) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def diff(old: Config, new: Config, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            dump(old).splitlines(True), dump(new).splitlines(True), old_name, new_name
        )
    )
