"""s3prl's Mockingjay, TERA and AALBERT checkpoints (``states-*.ckpt``, what s3prl's
``upstream/mockingjay``, ``upstream/tera`` and ``upstream/audio_albert`` load).

The file holds the upstream config (``Upstream_Config``, or ``Config`` in old checkpoints:
``transformer``, ``audio`` and ``task``) and the Transformer's weights (``Transformer``). The
model is :class:`scpc.models.bert.BertEncoder` (BERT-style layers, pre- or post-LN, shared in
AALBERT), its features the ``online_mel`` front-end (the config's ``audio`` section: s3prl's
on-the-fly log mel or linear spectra, deltas, CMVN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from scpc.errors import ScpcError
from scpc.frontend.config import ONLINE_MEL_DEFAULTS, SAMPLE_RATE
from scpc.importers.common import Converted, Options, load_weights, read_source
from scpc.models.bert import BertEncoder

DESCRIPTION = "s3prl's Mockingjay / TERA / AALBERT checkpoints (states-*.ckpt)"
WHAT = "Mockingjay/TERA/AALBERT checkpoint"
AUDIO_KEYS = ("n_mels", "n_freq", "win_ms", "hop_ms", "target_level")


def _upstream_config(payload: dict, path: Path) -> dict[str, Any]:
    for key in ("Config", "Upstream_Config"):  # old checkpoints kept it under Config
        config = payload.get(key)
        if isinstance(config, dict) and "transformer" in config:
            return config
    raise ScpcError(f"{path}: not a {WHAT}: no 'transformer' section in its config")


def frontend(audio: Any, path: Path) -> dict[str, Any]:
    if not isinstance(audio, dict):
        raise ScpcError(
            f"{path}: no on-the-fly feature config ('audio'): it was trained on precomputed "
            "features, which s3prl's upstream refuses too"
        )
    if "kaldi" in audio:
        raise ScpcError(
            f"{path}: Kaldi fbank/MFCC features ('kaldi' audio config) are not supported"
        )
    if audio.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise ScpcError(f"{path}: sample_rate {audio['sample_rate']} (scpc audio is 16 kHz)")
    feat = audio.get("input", {})
    if feat.get("feat_type", "mel") not in ("mel", "linear"):
        raise ScpcError(f"{path}: input feat_type {feat.get('feat_type')!r} is not supported")
    config: dict[str, Any] = {"name": "online_mel"}
    for key in ("feat_type", "log", "delta", "cmvn"):
        config[key] = feat.get(key, ONLINE_MEL_DEFAULTS[key])
    for key in AUDIO_KEYS:
        config[key] = audio.get(key, ONLINE_MEL_DEFAULTS[key])
    return config


def _weights(state: dict[str, torch.Tensor], share: bool, path: Path) -> dict[str, torch.Tensor]:
    """Renamed for BertEncoder: TF names (gamma/beta), aliases and shared copies dropped."""
    out = {}
    for key, value in state.items():
        key = key.replace("gamma", "weight").replace("beta", "bias")
        parts = key.split(".")
        # pre-LN registers the residual LayerNorm twice more: attention.LayerNorm, layer.LayerNorm
        if key.startswith("encoder.layer.") and parts[3] == "LayerNorm":
            continue
        if key.startswith("encoder.layer.") and parts[3:5] == ["attention", "LayerNorm"]:
            continue
        if share and key.startswith("encoder.layer.") and parts[2] != "0":
            first = ".".join(parts[:2] + ["0"] + parts[3:])
            if first in state and not torch.equal(state[first], value):
                raise ScpcError(f"{path}: share_layer is set but {key} differs from layer 0")
            continue
        out[key] = value
    return out


def convert(src: Path, options: Options) -> Converted:
    payload = read_source(src, options, WHAT)
    if not isinstance(payload, dict):
        raise ScpcError(f"{src}: not a {WHAT}: it does not hold a dictionary")
    config = _upstream_config(payload, src)
    state = payload.get("Transformer")
    if not isinstance(state, dict):
        raise ScpcError(f"{src}: not a {WHAT}: no 'Transformer' weights")
    t = config["transformer"]
    fe = frontend(config.get("audio"), src)
    from scpc.frontend import frontend_from_config

    try:
        feat_size = frontend_from_config(fe).feat_size
        encoder = BertEncoder(
            feat_size,
            hidden_size=int(t["hidden_size"]),
            num_layers=int(t["num_hidden_layers"]),
            num_heads=int(t["num_attention_heads"]),
            intermediate_size=int(t["intermediate_size"]),
            activation=str(t["hidden_act"]),
            layer_norm_eps=float(t["layer_norm_eps"]),
            share_layers=bool(t.get("share_layer", False)),
            pre_layer_norm=bool(t.get("pre_layer_norm", False)),
            dropout=float(t["hidden_dropout_prob"]),
            attention_dropout=float(t["attention_probs_dropout_prob"]),
            max_chunk=int(config.get("task", {}).get("sequence_length", 0) or 0),
        )
    except KeyError as e:
        raise ScpcError(f"{src}: its transformer config has no {e.args[0]!r}") from None
    except ScpcError as e:
        raise ScpcError(f"{src}: {e}") from None
    load_weights(encoder, _weights(state, encoder.config["share_layers"], src), src)
    kind = "AALBERT" if t.get("share_layer") else "Mockingjay/TERA"
    source = {
        "transformer": t,
        "audio": config.get("audio"),
        "task": config.get("task"),
        "global_step": payload.get("Global_step"),
    }
    return Converted(
        encoder=encoder,
        frontend=fe,
        source=source,
        description=(
            f"{kind} Transformer: {t['num_hidden_layers']} layers of {t['hidden_size']} "
            f"on {feat_size}-dim {fe['feat_type']} features"
        ),
    )
