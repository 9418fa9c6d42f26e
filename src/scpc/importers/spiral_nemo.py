"""SPIRAL's checkpoints (huawei-noah/Speech-Backbones SPIRAL, its NeMo fork): a ``.nemo``
archive (``model_config.yaml`` and ``model_weights.ckpt``) or a Lightning ``.ckpt`` (the
released SPIRAL-base/-large files: ``hyper_parameters.cfg`` and ``state_dict``).

The representation is the ST2Vec encoder's ``feature_encoder`` (the student, as SPIRAL
fine-tunes it) on its ``preprocessor``'s features: :class:`scpc.models.spiral.SpiralEncoder`
with SPIRAL's TF-style padding, on the ``nemo_mel`` front-end. The position convolution's
weight normalisation is folded into a plain weight (the same function; continued training
then trains the folded weight).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import torch
import yaml

from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config
from scpc.frontend.config import SAMPLE_RATE
from scpc.importers.common import Converted, Options, load_weights, plain, read_source
from scpc.models.spiral import SpiralEncoder
from scpc.models.wav2vec2 import fairseq_layer_state, fold_weight_norm

DESCRIPTION = "SPIRAL's .nemo archives and Lightning checkpoints (NeMo fork)"
WHAT = "SPIRAL checkpoint"
PREPROCESSOR_KEYS = {  # AudioToMelSpectrogramPreprocessor argument -> nemo_mel key
    "window": "window",
    "normalize": "normalize",
    "n_fft": "n_fft",
    "preemph": "preemph",
    "features": "nfilt",
    "lowfreq": "lowfreq",
    "highfreq": "highfreq",
    "log": "log",
    "log_zero_guard_type": "log_zero_guard_type",
    "log_zero_guard_value": "log_zero_guard_value",
    "mag_power": "mag_power",
    "normalize_time_domain": "normalize_time_domain",
}


def read(src: Path, options: Options) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not src.is_file():
        raise ScpcError(f"{src}: no such file")
    if tarfile.is_tarfile(src):
        try:
            with tarfile.open(src) as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = {"model_config.yaml", "model_weights.ckpt"} - set(members)
                if missing:
                    raise ScpcError(f"{src}: not a .nemo archive: no {sorted(missing)[0]}")
                config = yaml.safe_load(tar.extractfile(members["model_config.yaml"]).read())
                weights = tar.extractfile(members["model_weights.ckpt"]).read()
        except (tarfile.TarError, OSError, EOFError, yaml.YAMLError) as e:
            raise ScpcError(f"{src}: damaged .nemo archive ({type(e).__name__}: {e})") from None
        try:
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ScpcError(f"{src}: unreadable model_weights.ckpt ({type(e).__name__})") from None
        return config, state
    payload = read_source(src, options, WHAT)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ScpcError(f"{src}: not a {WHAT}: neither a .nemo archive nor a Lightning checkpoint")
    hyper = payload.get("hyper_parameters") or {}
    config = hyper.get("cfg", hyper)
    return plain(config), payload["state_dict"]


def _encoder_config(config: Any, src: Path) -> dict[str, Any]:
    """The ST2Vec encoder section: the first mapping holding a feature_encoder."""
    if isinstance(config, dict):
        if "feature_encoder" in config and "preprocessor" in config:
            return config
        for value in config.values():
            found = _encoder_config(value, src) if isinstance(value, dict) else None
            if found:
                return found
    return {}


def frontend(pre: dict[str, Any], src: Path) -> dict[str, Any]:
    rate = pre.get("sample_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise ScpcError(f"{src}: sample_rate {rate} (scpc audio is 16 kHz)")
    for key, ok in (("frame_splicing", 1), ("stft_conv", False), ("stft_exact_pad", False)):
        if pre.get(key, ok) != ok:
            raise ScpcError(f"{src}: preprocessor {key}={pre[key]!r} is not supported")
    config: dict[str, Any] = {"name": "nemo_mel"}
    size = pre.get("n_window_size") or int(pre.get("window_size", 0.02) * rate)
    stride = pre.get("n_window_stride") or int(pre.get("window_stride", 0.01) * rate)
    config.update(n_window_size=size, n_window_stride=stride)
    for key, ours in PREPROCESSOR_KEYS.items():
        if key in pre:
            config[ours] = pre[key]
    if isinstance(config.get("normalize"), dict):
        raise ScpcError(f"{src}: fixed-mean/std feature normalisation is not supported")
    if config.get("normalize") in (None, False, ""):
        config["normalize"] = "none"
    try:
        frontend_from_config(config)
    except ScpcError as e:
        raise ScpcError(f"{src}: {e}") from None
    return config


def _blocks(fe: dict[str, Any], src: Path) -> tuple[list[dict[str, Any]], int, int, float]:
    if fe.get("conv2d_block"):
        raise ScpcError(f"{src}: a 2-D convolution front block is not supported")
    if not fe.get("use_tf_pad", True):
        raise ScpcError(f"{src}: only SPIRAL's TF-style padding is supported")
    if fe.get("ln_eps", 1e-5) != 1e-5:
        raise ScpcError(f"{src}: ln_eps {fe['ln_eps']} is not supported (1e-5)")
    blocks, pos = [], set()
    for b in fe["conv_transformer_blocks"]:
        convs = []
        for c in b["conv_layers"]:
            if c.get("norm_type") != "ln" or list(c.get("dilation", [1])) != [1]:
                raise ScpcError(f"{src}: conv layers need norm_type 'ln' and no dilation")
            act = c.get("act_func") or "none"
            if act not in ("relu", "none"):
                raise ScpcError(f"{src}: conv activation {act!r} is not supported")
            convs.append([int(c["filters"]), int(c["kernel_size"][0]), int(c["stride"][0]), act])
        t = b.get("transformer_block")
        if not t:
            raise ScpcError(f"{src}: a conv block without transformer layers is not supported")
        enc = t["encoder"]
        if not enc.get("layer_norm_first", False) or enc.get("activation_fn", "gelu") != "gelu":
            raise ScpcError(f"{src}: only pre-LN transformer layers with GELU are supported")
        pos.add((int(t["conv"]["conv_pos"]), int(t["conv"]["conv_pos_groups"])))
        blocks.append(
            {
                "convs": convs,
                "padding": "tf",
                "num_layers": int(enc["encoder_layers"]),
                "num_heads": int(enc["num_attention_heads"]),
                "dim_feedforward": int(enc["ffn_embedding_dim"]),
            }
        )
    if len(pos) != 1:
        raise ScpcError(f"{src}: blocks with different position convolutions are not supported")
    kernel, groups = pos.pop()
    dropout = float(fe["conv_transformer_blocks"][0]["transformer_block"].get("dropout", 0.1))
    return blocks, kernel, groups, dropout


def _renamed(state, prefix: str, blocks: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    ours: dict[str, torch.Tensor] = {}
    module = 0
    for b, block in enumerate(blocks):
        for c in range(len(block["convs"])):
            p = f"{prefix}block_modules.{module}."
            ours[f"blocks.{b}.convs.{c}.conv.weight"] = state[p + "conv.conv.weight"]
            bias = state.get(p + "conv.conv.bias")  # bias=False layers: a zero bias
            ours[f"blocks.{b}.convs.{c}.conv.bias"] = (
                bias if bias is not None else torch.zeros(block["convs"][c][0])
            )
            ours[f"blocks.{b}.convs.{c}.norm.weight"] = state[p + "norm.weight"]
            ours[f"blocks.{b}.convs.{c}.norm.bias"] = state[p + "norm.bias"]
            module += 1
        p = f"{prefix}block_modules.{module}."
        ours[f"blocks.{b}.position.conv.weight"] = fold_weight_norm(state, p + "pos_conv.0.")
        ours[f"blocks.{b}.position.conv.bias"] = state[p + "pos_conv.0.bias"]
        for j in range(block["num_layers"]):
            ours.update(fairseq_layer_state(state, f"{p}layers.{j}.", f"blocks.{b}.layers.{j}."))
        ours[f"blocks.{b}.norm.weight"] = state[p + "layer_norm.weight"]
        ours[f"blocks.{b}.norm.bias"] = state[p + "layer_norm.bias"]
        module += 1
    return ours


def convert(src: Path, options: Options) -> Converted:
    config, state = read(src, options)
    enc = _encoder_config(config, src)
    if not enc:
        raise ScpcError(f"{src}: not a {WHAT}: no encoder config with a feature_encoder")
    fe_config = frontend(enc["preprocessor"], src)
    starts = sorted(
        {
            k[: k.index("feature_encoder.") + len("feature_encoder.")]
            for k in state
            if "feature_encoder.block_modules." in k and "target_feature_encoder." not in k
        }
    )
    if not starts:
        raise ScpcError(f"{src}: not a {WHAT}: no feature_encoder weights")
    fe = enc["feature_encoder"]
    try:
        blocks, kernel, groups, dropout = _blocks(fe, src)
    except (KeyError, TypeError, IndexError) as e:
        raise ScpcError(f"{src}: its feature_encoder config lacks {e}") from None
    feat_size = frontend_from_config(fe_config).feat_size
    if int(fe.get("feat_in", feat_size)) != feat_size:
        raise ScpcError(f"{src}: feat_in {fe['feat_in']} but the preprocessor gives {feat_size}")
    encoder = SpiralEncoder(feat_size, blocks, kernel, groups, dropout)
    try:
        ours = _renamed(state, starts[0], blocks)
    except KeyError as e:
        raise ScpcError(f"{src}: weights do not fit its config (no {e.args[0]})") from None
    load_weights(encoder, ours, src)
    _check_bank(state, fe_config, src)
    dims = " -> ".join(str(b["convs"][-1][0]) for b in blocks)
    return Converted(
        encoder=encoder,
        frontend=fe_config,
        source={"encoder": enc.get("feature_encoder"), "preprocessor": enc.get("preprocessor")},
        description=f"SPIRAL encoder ({dims}, {sum(b['num_layers'] for b in blocks)} layers)",
    )


def _check_bank(state: dict[str, torch.Tensor], fe_config: dict[str, Any], src: Path) -> None:
    """The stored mel bank (NeMo keeps librosa's as a buffer) must be the one scpc computes."""
    stored = [v for k, v in state.items() if k.endswith("featurizer.fb") and "target" not in k]
    if not stored:
        return
    ours = frontend_from_config(fe_config).bank.T.float()
    theirs = stored[0].reshape(ours.shape) if stored[0].numel() == ours.numel() else None
    if theirs is None or float((theirs - ours).abs().max()) > 1e-5:
        raise ScpcError(f"{src}: its mel filter bank differs from the Slaney bank scpc computes")
