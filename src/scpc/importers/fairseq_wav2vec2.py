"""fairseq's wav2vec 2.0 and HuBERT checkpoints (``cfg`` + ``model``, or the older ``args``
+ ``model``), and s3prl's converted copies of them (``task_cfg``, ``model_cfg``,
``model_weight``: what s3prl's ``upstream/hubert`` and ``upstream/wav2vec2`` load).

The representation is the model's transformer encoder on the raw waveform, standardised per
utterance when the task says ``normalize`` (fairseq's ``F.layer_norm(wav, wav.shape)``):
:class:`scpc.models.wav2vec2.Wav2Vec2Encoder`. Pre-training heads (quantiser, final
projection, label embeddings, mask embedding) are not kept.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from scpc.errors import ScpcError
from scpc.importers.common import Converted, Options, load_weights, plain, read_source
from scpc.models.wav2vec2 import Wav2Vec2Encoder, fairseq_state
from scpc.models.wavlm import WavLMEncoder, wavlm_state

DESCRIPTION = "fairseq wav2vec 2.0 / HuBERT checkpoints (and s3prl's converted ones)"
WHAT = "fairseq wav2vec 2.0 / HuBERT checkpoint"
LAYER_NORM_EPS = 1e-5  # F.layer_norm's, fairseq's waveform normalisation


def conv_layers(text: str, path: Path) -> list[list[int]]:
    """fairseq's ``conv_feature_layers`` ("[(512,10,5)] + [(512,3,2)] * 4 ..."), evaluated
    without eval: lists and tuples of integers, ``+`` and ``*`` only."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(ast.dump(node))

    try:
        layers = value(ast.parse(text, mode="eval").body)
        if not all(isinstance(c, list) and len(c) == 3 for c in layers):
            raise ValueError(text)
        return [[int(x) for x in c] for c in layers]
    except (SyntaxError, ValueError, TypeError):
        raise ScpcError(f"{path}: unreadable conv_feature_layers {text!r}") from None


def _configs(payload: dict, path: Path) -> tuple[dict, dict, dict]:
    """(model config, task config, weights) of either layout."""
    if "model_weight" in payload:  # s3prl's converted checkpoint
        return plain(payload["model_cfg"]), plain(payload["task_cfg"]), payload["model_weight"]
    if "model" not in payload:
        raise ScpcError(f"{path}: not a {WHAT}: no 'model' or 'model_weight' entry")
    if payload.get("cfg") is not None:
        cfg = plain(payload["cfg"])
        if "model" not in cfg:  # WavLM's: one flat config, normalize included
            return cfg, cfg, payload["model"]
        return cfg.get("model") or {}, cfg.get("task") or {}, payload["model"]
    if payload.get("args") is not None:  # fairseq before hydra: one argparse namespace
        args = plain(
            vars(payload["args"]) if hasattr(payload["args"], "__dict__") else payload["args"]
        )
        return args, args, payload["model"]
    raise ScpcError(f"{path}: not a {WHAT}: no 'cfg' or 'args' entry")


def convert(src: Path, options: Options) -> Converted:
    return convert_fairseq(src, options, wavlm=False)


def convert_fairseq(src: Path, options: Options, wavlm: bool) -> Converted:
    """wav2vec 2.0 / HuBERT, or with ``wavlm`` WavLM (its relative position settings)."""
    payload = read_source(src, options, WHAT)
    if not isinstance(payload, dict):
        raise ScpcError(f"{src}: not a {WHAT}: it does not hold a dictionary")
    model, task, state = _configs(payload, src)
    if model.get("layer_type", "transformer") != "transformer":
        raise ScpcError(f"{src}: layer_type {model['layer_type']!r} is not supported")
    if model.get("activation_fn", "gelu") != "gelu" or int(model.get("pos_conv_depth", 1)) != 1:
        raise ScpcError(f"{src}: only GELU layers and one position convolution are supported")
    encoder = build_encoder(model, state, src, wavlm)
    frontend: dict[str, Any] = {"name": "raw"}
    if task.get("normalize", False):
        frontend.update(normalize=True, normalize_eps=LAYER_NORM_EPS)
    kind = (
        "WavLM"
        if wavlm
        else "HuBERT"
        if any(k.startswith("label_embs") for k in state)
        else "wav2vec 2.0"
    )
    return Converted(
        encoder=encoder,
        frontend=frontend,
        source={"model": model, "task": task},
        description=(
            f"{kind} ({encoder.config['num_layers']} layers of {encoder.output_size}, "
            f"{'pre' if encoder.layer_norm_first else 'post'}-LN)"
        ),
    )


def build_encoder(
    model: dict[str, Any], state: dict[str, Any], src: Path, wavlm: bool
) -> Wav2Vec2Encoder:
    """The encoder a fairseq model config describes, with its weights (fairseq's names)."""
    layers = conv_layers(
        str(model.get("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")),
        src,
    )
    state = {k: v for k, v in state.items() if not k.startswith("w2v_encoder.")} or {
        k.removeprefix("w2v_encoder.w2v_model."): v for k, v in state.items()
    }
    relative: dict[str, Any] = {}
    if wavlm:
        relative = {
            "num_buckets": int(model.get("num_buckets", 320)),
            "max_distance": int(model.get("max_distance", 800)),
            "gru_rel_pos": bool(model.get("gru_rel_pos", False)),
            "relative_position_embedding": bool(model.get("relative_position_embedding", False)),
        }
    try:
        encoder = (WavLMEncoder if wavlm else Wav2Vec2Encoder)(
            **relative,
            conv_layers=layers,
            extractor_mode=str(model.get("extractor_mode", "default")),
            conv_bias=bool(model.get("conv_bias", False)),
            embed_dim=int(model.get("encoder_embed_dim", 768)),
            num_layers=int(model.get("encoder_layers", 12)),
            num_heads=int(model.get("encoder_attention_heads", 12)),
            ffn_dim=int(model.get("encoder_ffn_embed_dim", 3072)),
            layer_norm_first=bool(model.get("layer_norm_first", False)),
            conv_pos=int(model.get("conv_pos", 128)),
            conv_pos_groups=int(model.get("conv_pos_groups", 16)),
            dropout=float(model.get("dropout", 0.1)),
            attention_dropout=float(model.get("attention_dropout", 0.1)),
            activation_dropout=float(model.get("activation_dropout", 0.0)),
            layerdrop=float(model.get("encoder_layerdrop", 0.0)),
        )
        ours = (wavlm_state if wavlm else fairseq_state)(
            state, int(model.get("encoder_layers", 12)), len(layers)
        )
    except KeyError as e:
        raise ScpcError(f"{src}: weights do not fit its config (no {e.args[0]})") from None
    except ScpcError as e:
        raise ScpcError(f"{src}: {e}") from None
    load_weights(encoder, ours, src)
    return encoder
