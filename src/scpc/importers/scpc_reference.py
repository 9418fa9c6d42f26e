"""The reference scpc's checkpoints (sdrobert/scpc): the ``best.ckpt`` its ``scpc-train``
writes, i.e. the inference model's state dict plus a ``json`` entry describing the encoder
(``{"name": "seq", "args": [latent, context]}``, positional constructor arguments).

Every encoder the reference has is rebuilt with scpc's: ``conv`` (the CPC encoder, none /
batch / channel norm), ``ff``, ``id``, ``ra`` (GRU / LSTM / RNN), ``csa`` and ``sa`` (torch's
post-LN Transformer layers with a final LayerNorm), ``cconv`` and nested ``seq``. The
reference reads 16-bit audio as integer-valued floats, so the imported front-end carries
``input_scale: 32768``; its features come from the model's ``feats.args.txt`` (``--raw`` or
``--computer-json F``), or are raw samples when the encoder takes one channel.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from scpc.errors import ScpcError
from scpc.frontend import check_config
from scpc.importers.common import Converted, Options, load_weights, read_source
from scpc.models.encoders import (
    CausalConvEncoder,
    CausalSelfAttentionEncoder,
    ConvEncoder,
    Encoder,
    EncoderSequence,
    FeedForwardEncoder,
    IdentityEncoder,
    RecurrentEncoder,
    SelfAttentionEncoder,
)

DESCRIPTION = "the reference scpc's best.ckpt (sdrobert/scpc), with its feats.args.txt"
WHAT = "reference scpc checkpoint"
INT16_SCALE = 32768.0  # pydrobert.speech reads 16-bit PCM as integer-valued floats

_ATTENTION = (
    ("num_layers", 1),
    ("num_heads", 8),
    ("dim_feedforward", 2048),
    ("dropout_prob", 0.0),
    ("enable_nested_tensor", False),
    ("pos_period", None),
)
# the reference's constructor signatures (modules.py), after input_size and output_size
SIGNATURES: dict[str, tuple[tuple[str, Any], ...]] = {
    "id": (),
    "ff": (("nonlin_type", "relu"), ("bias", True), ("dropout_prob", 0.0)),
    "conv": (("norm_style", "none"), ("dropout_prob", 0.0)),
    "cconv": (
        ("kernel_size", 8),
        ("num_layers", 2),
        ("nonlin_type", "relu"),
        ("dropout_prob", 0.0),
    ),
    "sa": _ATTENTION,
    "csa": (("max_width", None), *_ATTENTION),
    "ra": (("num_layers", 1), ("recurrent_type", "gru"), ("dropout_prob", 0.0)),
}


def _arguments(spec: dict[str, Any], where: str) -> dict[str, Any]:
    name = spec["name"]
    names = ("input_size", "output_size", *(n for n, _ in SIGNATURES[name]))
    args, kwargs = list(spec.get("args", [])), dict(spec.get("kwargs", {}))
    if len(args) > len(names) or set(kwargs) - set(names):
        raise ScpcError(f"{where}: encoder {name!r} has arguments the reference does not take")
    bound = {"output_size": None, **dict(SIGNATURES[name]), **dict(zip(names, args)), **kwargs}
    if bound["output_size"] is None:
        bound["output_size"] = bound["input_size"]
    return bound


def _conv(a: dict[str, Any], state: dict[str, torch.Tensor], where: str):
    if a["norm_style"] == "instance":
        raise ScpcError(
            f"{where}: the conv encoder's 'instance' norm is not supported (the reference's "
            "InstanceNorm1d normalises with running statistics at inference; no published "
            "reference configuration uses it)"
        )
    encoder = ConvEncoder(a["input_size"], a["output_size"], a["norm_style"], a["dropout_prob"])
    ours = {}
    for key, value in state.items():
        kind, _, rest = key.partition(".")
        layer = int(kind[-1]) - 1  # conv1..conv5, norm1..norm5
        if kind.startswith("norm") and value.dim() == 3:  # ChannelNorm's (1, C, 1)
            value = value.reshape(-1)
        ours[f"{'convs' if kind.startswith('conv') else 'norms'}.{layer}.{rest}"] = value
    return encoder, ours


def _ff(a, state, where):
    encoder = FeedForwardEncoder(
        a["input_size"], a["output_size"], a["nonlin_type"], a["bias"], a["dropout_prob"]
    )
    return encoder, {k.replace("ff.", "net.1.", 1): v for k, v in state.items()}


def _cconv(a, state, where):
    encoder = CausalConvEncoder(
        a["input_size"],
        a["output_size"],
        a["num_layers"],
        a["kernel_size"],
        a["nonlin_type"],
        a["dropout_prob"],
    )
    return encoder, dict(state)


def _attention(a, state, where, causal: bool):
    if a["pos_period"] is not None:
        raise ScpcError(f"{where}: attention with pos_period is not supported")
    if a["output_size"] != a["input_size"]:
        raise ScpcError(f"{where}: attention with an output projection is not supported")
    cls = CausalSelfAttentionEncoder if causal else SelfAttentionEncoder
    encoder = cls(
        a["input_size"],
        num_layers=a["num_layers"],
        num_heads=a["num_heads"],
        dim_feedforward=a["dim_feedforward"],
        max_width=a.get("max_width"),
        dropout=a["dropout_prob"],
    )
    return encoder, {k.removeprefix("encoder."): v for k, v in state.items()}


def _recurrent(a, state, where):
    encoder = RecurrentEncoder(
        a["input_size"], a["output_size"], a["num_layers"], a["recurrent_type"], a["dropout_prob"]
    )
    ours = {}
    for key, value in state.items():  # one multi-layer RNN -> one RNN per layer
        name, _, layer = key.removeprefix("rnn.").rpartition("_l")
        ours[f"layers.{layer}.{name}_l0"] = value
    return encoder, ours


BUILDERS: dict[str, Callable[..., tuple[Encoder, dict[str, torch.Tensor]]]] = {
    "id": lambda a, state, where: (IdentityEncoder(a["input_size"]), {}),
    "ff": _ff,
    "conv": _conv,
    "cconv": _cconv,
    "sa": lambda a, state, where: _attention(a, state, where, causal=False),
    "csa": lambda a, state, where: _attention(a, state, where, causal=True),
    "ra": _recurrent,
}


def rebuild(
    spec: Any, state: dict[str, torch.Tensor], where: str
) -> tuple[Encoder, dict[str, torch.Tensor]]:
    """scpc's encoder for a reference JSON spec, and ``state`` (its weights, keys relative to
    it) renamed for it."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ScpcError(f"{where}: not a {WHAT}: its 'json' entry is not an encoder description")
    name = spec["name"]
    if name == "seq":
        members, ours = [], {}
        for i, sub in enumerate(spec.get("args", [])):
            prefix = f"encoders.{i}."
            member, renamed = rebuild(
                sub, {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, where
            )
            members.append(member)
            ours.update({prefix + k: v for k, v in renamed.items()})
        return EncoderSequence(*members), ours
    if name not in BUILDERS:
        raise ScpcError(f"{where}: unknown reference encoder {name!r}")
    return BUILDERS[name](_arguments(spec, where), state, where)


def _feats_args(path: Path) -> list[str]:
    try:
        return shlex.split(path.read_text(), comments=True)
    except OSError as e:
        raise ScpcError(f"{path}: cannot read ({e.strerror})") from None


def _computer_json(path: Path, near: Path | None) -> dict[str, Any]:
    candidates = [path]
    if near is not None and not path.is_absolute():  # the recipe's paths are from its root
        candidates += [near.parent / path, near.parent.parent / path]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ScpcError(f"{candidate}: not a JSON feature computer ({e})") from None
    raise ScpcError(f"{path}: no such feature computer JSON")


def frontend(options: Options, input_size: int) -> dict[str, Any]:
    """The scpc front-end config of the reference's feature options."""
    raw, computer = False, options.computer_json
    if options.feats_args is not None:
        tokens = _feats_args(options.feats_args)
        for i, token in enumerate(tokens):
            if token == "--raw":
                raw = True
            elif token == "--computer-json" and i + 1 < len(tokens):
                computer = Path(tokens[i + 1])
            elif token in ("--preprocess", "--postprocess") and i + 1 < len(tokens):
                if json.loads(tokens[i + 1]) != []:
                    raise ScpcError(f"{options.feats_args}: {token} is not supported")
            elif token == "--pca-file":
                raise ScpcError(
                    f"{options.feats_args}: --pca-file is not imported (fit one with scpc-pca)"
                )
    if computer is None:
        if input_size != 1 and not raw:
            raise ScpcError(
                f"the encoder takes {input_size} features: name its feature computer with "
                "--feats-args FILE or --computer-json FILE"
            )
        return {"name": "raw", "input_scale": INT16_SCALE}
    config = {**_computer_json(computer, options.feats_args), "input_scale": INT16_SCALE}
    try:
        check_config(config)
    except ScpcError as e:
        raise ScpcError(f"{computer}: {e}") from None
    return config


def convert(src: Path, options: Options) -> Converted:
    payload = read_source(src, options, WHAT)
    if not isinstance(payload, dict):
        raise ScpcError(f"{src}: not a {WHAT}: it does not hold a dictionary")
    if "json" not in payload:
        hint = (
            " (a Lightning training checkpoint: import the best.ckpt its scpc-train writes)"
            if "state_dict" in payload
            else ""
        )
        raise ScpcError(f"{src}: not a {WHAT}: no 'json' entry{hint}")
    state = {k: v for k, v in payload.items() if k != "json"}
    spec = payload["json"]
    encoder, ours = rebuild(spec, state, str(src))
    load_weights(encoder, ours, src)
    fe = frontend(options, encoder.input_size)
    return Converted(
        encoder=encoder,
        frontend=fe,
        source={"json": spec, "frontend": fe},
        description=f"reference scpc model ({_summary(spec)})",
    )


def _summary(spec: dict[str, Any]) -> str:
    if spec.get("name") == "seq":
        return " + ".join(_summary(s) for s in spec.get("args", []))
    return str(spec.get("name"))
