"""CPC_audio checkpoints (facebookresearch/CPC_audio): the ZeroSpeech 2021 CPC-small and
CPC-big baselines, Libri-light's CPC, and what s3prl's ``upstream/cpc`` loads.

The file holds ``config`` (CPC_audio's training arguments) and the model's weights under
``weights`` (s3prl's layout) or ``gEncoder`` (CPC_audio's own training checkpoints, whose
arguments may instead sit beside them in ``checkpoint_args.json``). The encoder is CPC's
five convolutions (``gEncoder``), then ``gAR``: an LSTM, GRU or RNN of ``nLevelsGRU`` layers,
or none. Audio is read as floats in [-1, 1] and not normalised, as CPC_audio reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from scpc.errors import ScpcError
from scpc.importers.common import Converted, Options, load_weights, read_source
from scpc.models.encoders import ConvEncoder, EncoderSequence, RecurrentEncoder

DESCRIPTION = "CPC_audio / ZeroSpeech 2021 CPC baselines (s3prl upstream/cpc)"
WHAT = "CPC_audio checkpoint"
NORMS = {"layerNorm": "channel", "batchNorm": "batch", "instanceNorm": "instance", "ID": "none"}
CELLS = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
DEFAULTS = {  # CPC_audio's argument defaults (cpc/cpc_default_config.py)
    "hiddenEncoder": 256,
    "hiddenGar": 256,
    "nLevelsGRU": 1,
    "arMode": "LSTM",
    "normMode": "layerNorm",
    "encoder_type": "cpc",
    "cpc_mode": None,
}


def _config(payload: dict, path: Path) -> dict:
    config = payload.get("config")
    if config is None:
        beside = path.parent / "checkpoint_args.json"
        if not beside.is_file():
            raise ScpcError(
                f"{path}: not a {WHAT}: no 'config' entry and no checkpoint_args.json beside it"
            )
        config = json.loads(beside.read_text())
    if not isinstance(config, dict):
        config = vars(config)  # an argparse.Namespace (needs --allow-pickle)
    return {**DEFAULTS, **config}


def convert(src: Path, options: Options) -> Converted:
    payload = read_source(src, options, WHAT)
    if not isinstance(payload, dict):
        raise ScpcError(f"{src}: not a {WHAT}: it does not hold a dictionary")
    weights = payload.get("weights", payload.get("gEncoder"))
    if not isinstance(weights, dict):
        raise ScpcError(f"{src}: not a {WHAT}: no 'weights' or 'gEncoder' entry")
    weights = {k.removeprefix("module."): v for k, v in weights.items()}  # DataParallel's
    config = _config(payload, src)
    if config["encoder_type"] != "cpc":
        raise ScpcError(
            f"{src}: encoder_type {config['encoder_type']!r} is not supported (only CPC's "
            "convolutional encoder, 'cpc')"
        )
    if config["normMode"] not in NORMS:
        raise ScpcError(f"{src}: unknown normMode {config['normMode']!r}")
    if config["cpc_mode"] == "reverse" or config["arMode"] not in (*CELLS, "no_ar"):
        what = "reverse mode" if config["cpc_mode"] == "reverse" else f"arMode {config['arMode']!r}"
        raise ScpcError(f"{src}: {what} is not supported (LSTM, GRU, RNN or no_ar, forward)")
    hidden = int(config["hiddenEncoder"])
    conv = ConvEncoder(1, hidden, NORMS[config["normMode"]])
    state: dict[str, torch.Tensor] = {}
    for i in range(5):
        for kind in ("weight", "bias"):
            key = f"gEncoder.conv{i}.{kind}"
            if key not in weights:
                raise ScpcError(f"{src}: not a {WHAT} with CPC's encoder: no {key}")
            state[f"encoders.0.convs.{i}.{kind}"] = weights[key]
        for key, value in weights.items():
            prefix = f"gEncoder.batchNorm{i}."
            if key.startswith(prefix):  # ChannelNorm's (1, C, 1) scale and shift are (C,)
                state[f"encoders.0.norms.{i}.{key[len(prefix) :]}"] = (
                    value.reshape(-1) if value.dim() else value
                )
    members = [conv]
    if config["arMode"] != "no_ar":
        layers = int(config["nLevelsGRU"])
        ar = RecurrentEncoder(hidden, int(config["hiddenGar"]), layers, CELLS[config["arMode"]])
        for key, value in weights.items():  # one multi-layer RNN -> one RNN per layer
            if key.startswith("gAR.baseNet."):
                name, _, layer = key[len("gAR.baseNet.") :].rpartition("_l")
                state[f"encoders.1.layers.{layer}.{name}_l0"] = value
        members.append(ar)
    encoder = EncoderSequence(*members)
    load_weights(encoder, state, src)
    source = {
        key: config.get(key)
        for key in ("hiddenEncoder", "hiddenGar", "nLevelsGRU", "arMode", "normMode", "pathDB")
    }
    ar_text = (
        "no context network"
        if config["arMode"] == "no_ar"
        else f"{config['nLevelsGRU']}-layer {config['arMode']} {config['hiddenGar']}"
    )
    return Converted(
        encoder=encoder,
        frontend={"name": "raw"},
        source={**source, "train_data": config.get("pathDB") or "as released"},
        description=f"CPC_audio model: conv {hidden} ({config['normMode']}), {ar_text}",
    )
