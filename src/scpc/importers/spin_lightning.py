"""Spin's released checkpoints (vectominist/spin: ``spin_hubert_<K>.ckpt``,
``spin_wavlm_<K>.ckpt``): PyTorch Lightning checkpoints of its SpinModel, whose
``state_dict`` holds the fine-tuned upstream under ``encoder.model.`` (fairseq's HuBERT or
WavLM, as s3prl's ``upstream/hubert`` and ``upstream/wavlm`` build them), the prediction head
(``pred_head.``) and the codebook (``loss_module.``); ``hyper_parameters`` is Spin's config.

The checkpoint does not hold the upstream's architecture config (Spin rebuilds it from the
base model it downloads), so it is read off the weights: layers, widths, position
convolution, extractor mode; 64-dimensional heads (HuBERT's and WavLM's Base and Large);
fairseq's standard extractor strides (kernels 10, 3, 3, 3, 3, 2, 2 -> strides 5, 2, ...);
with a layer-norm extractor (the Large models) pre-LN layers and a standardised waveform, as
those models are configured. Only the upstream is kept; Spin's head and codebook are not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from scpc.errors import ScpcError
from scpc.importers.common import Converted, Options, plain, read_source
from scpc.importers.fairseq_wav2vec2 import LAYER_NORM_EPS, build_encoder

DESCRIPTION = "Spin's released Lightning checkpoints (HuBERT or WavLM after Spin)"
WHAT = "Spin checkpoint"
PREFIX = "encoder.model."
HEAD_DIM = 64
STANDARD_KERNELS = [10, 3, 3, 3, 3, 2, 2]
STANDARD_STRIDES = [5, 2, 2, 2, 2, 2, 2]


def infer_config(state: dict[str, torch.Tensor], wavlm: bool, path: Path) -> dict[str, Any]:
    """A fairseq model config for the upstream's weights (fairseq's names)."""
    convs = []
    while f"feature_extractor.conv_layers.{len(convs)}.0.weight" in state:
        convs.append(state[f"feature_extractor.conv_layers.{len(convs)}.0.weight"].shape)
    kernels = [int(w[2]) for w in convs]
    if kernels != STANDARD_KERNELS:
        raise ScpcError(f"{path}: feature extractor kernels {kernels}, not fairseq's standard")
    layers = 0
    while f"encoder.layers.{layers}.fc1.weight" in state:
        layers += 1
    if not layers or "encoder.pos_conv.0.bias" not in state:
        raise ScpcError(f"{path}: not a {WHAT}: no transformer layers under '{PREFIX}'")
    embed = int(state["encoder.pos_conv.0.bias"].shape[0])
    pos = state.get("encoder.pos_conv.0.weight_v", state.get("encoder.pos_conv.0.weight"))
    if pos is None:
        pos = state["encoder.pos_conv.0.parametrizations.weight.original1"]
    large = "feature_extractor.conv_layers.0.2.1.weight" in state
    config = {
        "conv_feature_layers": str(
            [(int(w[0]), k, s) for w, k, s in zip(convs, kernels, STANDARD_STRIDES)]
        ),
        "extractor_mode": "layer_norm" if large else "default",
        "conv_bias": "feature_extractor.conv_layers.0.0.bias" in state,
        "encoder_embed_dim": embed,
        "encoder_layers": layers,
        "encoder_attention_heads": embed // HEAD_DIM,
        "encoder_ffn_embed_dim": int(state["encoder.layers.0.fc1.weight"].shape[0]),
        "layer_norm_first": large,
        "conv_pos": int(pos.shape[2]),
        "conv_pos_groups": embed // int(pos.shape[1]),
    }
    if wavlm:
        bias = state.get("encoder.layers.0.self_attn.relative_attention_bias.weight")
        config.update(
            relative_position_embedding=bias is not None,
            num_buckets=int(bias.shape[0]) if bias is not None else 320,
            max_distance=800,  # WavLM Base, Base+ and Large
            gru_rel_pos="encoder.layers.0.self_attn.grep_a" in state,
        )
    return config


def convert(src: Path, options: Options) -> Converted:
    payload = read_source(src, options, WHAT)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ScpcError(f"{src}: not a {WHAT}: no Lightning 'state_dict'")
    hparams = plain(payload.get("hyper_parameters") or {})
    encoder_cfg = (hparams.get("model") or {}).get("encoder") or {}
    kind = str(encoder_cfg.get("type", "HuBERT"))
    if kind not in ("HuBERT", "WavLM"):
        raise ScpcError(f"{src}: Spin encoder type {kind!r} is not HuBERT or WavLM")
    for key, plain_value in (
        ("normalize", False),
        ("pre_normalize", False),
        ("disable_pos", False),
        ("feat_select", "x"),
    ):
        if encoder_cfg.get(key, plain_value) != plain_value:
            raise ScpcError(
                f"{src}: Spin encoder option {key}={encoder_cfg[key]!r} is not supported"
            )
    state = {k[len(PREFIX) :]: v for k, v in payload["state_dict"].items() if k.startswith(PREFIX)}
    if not state:
        raise ScpcError(f"{src}: not a {WHAT}: no weights under '{PREFIX}'")
    wavlm = kind == "WavLM"
    model = infer_config(state, wavlm, src)
    encoder = build_encoder(model, state, src, wavlm)
    frontend: dict[str, Any] = {"name": "raw"}
    if model["layer_norm_first"]:  # the Large models' fairseq task: normalize
        frontend.update(normalize=True, normalize_eps=LAYER_NORM_EPS)
    loss = (hparams.get("model") or {}).get("loss") or {}
    codes = loss.get("num_vars")
    return Converted(
        encoder=encoder,
        frontend=frontend,
        source={
            "spin_config": hparams,
            "inferred_model": model,
            "global_step": payload.get("global_step"),
        },
        description=(
            f"{kind} after Spin ({codes or '?'} codes; {model['encoder_layers']} layers of "
            f"{model['encoder_embed_dim']}, {'pre' if model['layer_norm_first'] else 'post'}-LN)"
        ),
    )
