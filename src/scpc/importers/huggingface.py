"""Hugging Face checkpoints of HuBERT, wav2vec 2.0 and WavLM: a directory with ``config.json``
and ``model.safetensors`` (or sharded ``model-0000N-of-0000M.safetensors`` with their index,
or ``pytorch_model.bin``), as ``save_pretrained`` writes it and the hub serves it
(facebook/hubert-base-ls960, facebook/wav2vec2-base, microsoft/wavlm-base-plus, ...).

The weights are renamed to fairseq's names and built like fairseq's checkpoints
(:mod:`scpc.importers.fairseq_wav2vec2`), so both sources meet in the same encoder. The
waveform is standardised per utterance when the directory's ``preprocessor_config.json`` says
``do_normalize`` (Wav2Vec2FeatureExtractor: biased variance, eps 1e-7), which is what
transformers' feature extractor hands the model. Task heads (CTC, classification) and
pre-training heads (quantiser, projections, ``masked_spec_embed``) are not kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from scpc.errors import ScpcError
from scpc.importers.common import Converted, Options, read_source
from scpc.importers.fairseq_wav2vec2 import build_encoder

DESCRIPTION = "Hugging Face HuBERT / wav2vec 2.0 / WavLM directories (config.json + weights)"
WHAT = "Hugging Face checkpoint directory"
FEATURE_EXTRACTOR_EPS = 1e-7  # transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
MODEL_TYPES = ("hubert", "wav2vec2", "wavlm")
LAYER_NORM_EPS = 1e-5  # torch's default, which scpc's layers use

# transformers' module names -> fairseq's (the names scpc's fairseq import reads)
_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (
        r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.",
        r"feature_extractor.conv_layers.\1.2.",
    ),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
    (r"^(encoder\.layers\.\d+\.)attention\.gru_rel_pos_const$", r"\1self_attn.grep_a"),
    (r"^(encoder\.layers\.\d+\.)attention\.gru_rel_pos_linear\.", r"\1self_attn.grep_linear."),
    (
        r"^(encoder\.layers\.\d+\.)attention\.rel_attn_embed\.",
        r"\1self_attn.relative_attention_bias.",
    ),
    (r"^(encoder\.layers\.\d+\.)attention\.", r"\1self_attn."),
    (r"^(encoder\.layers\.\d+\.)layer_norm\.", r"\1self_attn_layer_norm."),
    (r"^(encoder\.layers\.\d+\.)feed_forward\.intermediate_dense\.", r"\1fc1."),
    (r"^(encoder\.layers\.\d+\.)feed_forward\.output_dense\.", r"\1fc2."),
]
_HEADS = ("masked_spec_embed", "quantizer.", "project_q.", "project_hid.", "lm_head.", "adapter.")


def fairseq_names(state: dict[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    """The base model's weights under fairseq's names: a task model's prefix
    (``hubert.``, ``wav2vec2.``, ``wavlm.``) removed, heads dropped."""
    prefix = f"{model_type}."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    out = {}
    for key, value in state.items():
        if key.startswith(_HEADS):
            continue
        for pattern, replacement in _RENAMES:
            key, hit = re.subn(pattern, replacement, key)
            if hit:
                break
        out[key] = value
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ScpcError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(value, dict):
        raise ScpcError(f"{path}: not a JSON object")
    return value


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ScpcError(f"{path}: not a readable safetensors file ({e})") from None


def read_weights(src: Path, options: Options) -> tuple[dict[str, torch.Tensor], Path]:
    """The directory's weights, and the file that holds them (or the shards' index)."""
    single, index = src / "model.safetensors", src / "model.safetensors.index.json"
    if single.is_file():
        return _safetensors(single), single
    if index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        if not shards:
            raise ScpcError(f"{index}: no weight_map")
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(_safetensors(src / shard))
        return state, index
    legacy = src / "pytorch_model.bin"
    if legacy.is_file():
        state = read_source(legacy, options, WHAT)
        if not isinstance(state, dict):
            raise ScpcError(f"{legacy}: not a {WHAT}: it does not hold a dictionary")
        return state, legacy
    raise ScpcError(
        f"{src}: not a {WHAT}: no model.safetensors, model.safetensors.index.json or "
        "pytorch_model.bin"
    )


def fairseq_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """transformers' config.json as fairseq's model config, unsupported options refused."""
    c = dict(config)

    def refuse(why: str) -> None:
        raise ScpcError(f"{path}: {why} is not supported")

    if c.get("hidden_act", "gelu") != "gelu" or c.get("feat_extract_activation", "gelu") != "gelu":
        refuse("an activation other than GELU")
    if c.get("feat_proj_layer_norm", True) is False:
        refuse("feat_proj_layer_norm false")
    if c.get("conv_pos_batch_norm", False) or int(c.get("num_conv_pos_embedding_layers", 1)) != 1:
        refuse("a position convolution other than wav2vec 2.0's")
    if float(c.get("layer_norm_eps", LAYER_NORM_EPS)) != LAYER_NORM_EPS:
        refuse(f"layer_norm_eps {c['layer_norm_eps']}")
    dims, kernels, strides = (c.get(k) for k in ("conv_dim", "conv_kernel", "conv_stride"))
    if (
        dims is None
        or kernels is None
        or strides is None
        or not len(dims) == len(kernels) == len(strides)
    ):
        raise ScpcError(
            f"{path}: conv_dim, conv_kernel and conv_stride must be lists of one length"
        )
    norm = c.get("feat_extract_norm", "group")
    if norm not in ("group", "layer"):
        refuse(f"feat_extract_norm {norm!r}")
    return {
        "conv_feature_layers": str([tuple(x) for x in zip(dims, kernels, strides)]),
        "extractor_mode": "default" if norm == "group" else "layer_norm",
        "conv_bias": bool(c.get("conv_bias", False)),
        "encoder_embed_dim": int(c.get("hidden_size", 768)),
        "encoder_layers": int(c.get("num_hidden_layers", 12)),
        "encoder_attention_heads": int(c.get("num_attention_heads", 12)),
        "encoder_ffn_embed_dim": int(c.get("intermediate_size", 3072)),
        "layer_norm_first": bool(c.get("do_stable_layer_norm", False)),
        "conv_pos": int(c.get("num_conv_pos_embeddings", 128)),
        "conv_pos_groups": int(c.get("num_conv_pos_embedding_groups", 16)),
        "dropout": float(c.get("hidden_dropout", 0.1)),
        "attention_dropout": float(c.get("attention_dropout", 0.1)),
        "activation_dropout": float(c.get("activation_dropout", 0.1)),
        "encoder_layerdrop": float(c.get("layerdrop", 0.1)),
        # WavLM: every layer gated, the first holding the bucketed bias
        "num_buckets": int(c.get("num_buckets", 320)),
        "max_distance": int(c.get("max_bucket_distance", 800)),
        "gru_rel_pos": True,
        "relative_position_embedding": True,
    }


def convert(src: Path, options: Options) -> Converted:
    if not src.is_dir():
        raise ScpcError(f"{src}: not a {WHAT} (a directory with config.json and the weights)")
    if not (src / "config.json").is_file():
        raise ScpcError(f"{src}: not a {WHAT}: no config.json")
    config = _read_json(src / "config.json")
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ScpcError(
            f"{src / 'config.json'}: model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}"
        )
    model = fairseq_config(config, src / "config.json")
    state, weights = read_weights(src, options)
    normalize = False
    if (src / "preprocessor_config.json").is_file():
        normalize = bool(_read_json(src / "preprocessor_config.json").get("do_normalize", False))
    kind = {"hubert": "HuBERT", "wav2vec2": "wav2vec 2.0", "wavlm": "WavLM"}[model_type]
    encoder = build_encoder(
        model, fairseq_names(state, model_type), weights, wavlm=model_type == "wavlm"
    )
    frontend: dict[str, Any] = {"name": "raw"}
    if normalize:
        frontend.update(normalize=True, normalize_eps=FEATURE_EXTRACTOR_EPS)
    return Converted(
        encoder=encoder,
        frontend=frontend,
        source={"config": config, "preprocessor": {"do_normalize": normalize}},
        description=(
            f"{kind} ({encoder.config['num_layers']} layers of {encoder.output_size}, "
            f"{'pre' if encoder.layer_norm_first else 'post'}-LN; Hugging Face)"
        ),
        source_file=weights,
    )
