"""The wav2vec 2.0 / HuBERT architecture (Baevski et al. 2020; Hsu et al. 2021), as fairseq
(and s3prl's copy of it) computes a representation, so that their weights load by name.

Waveform (N, S, 1) -> convolutional feature extractor (``conv_layers`` of [channels, kernel,
stride], no padding, GELU; "default" mode: a GroupNorm with one group per channel after the
first convolution only, normalising each channel over the utterance's own frames; "layer_norm"
mode: a LayerNorm over channels after every convolution) -> LayerNorm -> projection to
``embed_dim`` -> x + GELU(weight-normalised grouped convolution over ``conv_pos`` frames)
-> post-LN (LayerNorm, then BERT layers) or pre-LN (layers, then a LayerNorm) Transformer.

Frames: ``floor((S - k) / s) + 1`` per convolution, for each utterance as if alone (fairseq's
padded-batch GroupNorm and HuBERT's padding-mask rule make its output depend on the batch).
Hidden states as s3prl's upstreams: the input of every layer, then the encoder's output
(``num_layers + 1``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask, mask_padding
from scpc.models.encoders import Encoder, EncoderOutput, MaskedInstanceNorm, constructor_args

BASE_CONV_LAYERS = [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, norm: str, bias: bool):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            # fairseq's GroupNorm(C, C): each channel over the utterance's own frames
            self.norm: nn.Module = MaskedInstanceNorm(cout)
        elif norm == "layer":
            self.norm = nn.LayerNorm(cout)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        x = self.conv(x)
        lens = (torch.div(lens - k, s, rounding_mode="floor") + 1).clamp(min=0)
        if self.norm_kind == "group":
            x = self.norm(x, lens)
        elif self.norm_kind == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        x = nn.functional.gelu(x)
        return x * frame_mask(lens, x.shape[2]).unsqueeze(1).to(x.dtype), lens


class Wav2Vec2Encoder(Encoder, json_name="wav2vec2"):
    def __init__(
        self,
        input_size: int = 1,
        conv_layers: list[list[int]] | None = None,
        extractor_mode: str = "default",
        conv_bias: bool = False,
        embed_dim: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        ffn_dim: int = 3072,
        layer_norm_first: bool = False,
        conv_pos: int = 128,
        conv_pos_groups: int = 16,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
        layerdrop: float = 0.0,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        if input_size != 1:
            raise ScpcError(f"wav2vec2 encoder: takes a waveform (1 channel), not {input_size}")
        if extractor_mode not in ("default", "layer_norm"):
            raise ScpcError(f"wav2vec2 encoder: unknown extractor_mode {extractor_mode!r}")
        if embed_dim % num_heads or embed_dim % conv_pos_groups:
            raise ScpcError(
                "wav2vec2 encoder: heads and position-conv groups must divide embed_dim"
            )
        layers = conv_layers or BASE_CONV_LAYERS
        self.input_size, self.output_size = 1, embed_dim
        self.layer_norm_first, self.layerdrop = layer_norm_first, layerdrop
        self.conv_layers = nn.ModuleList()
        cin = 1
        for i, (cout, k, s) in enumerate(layers):
            norm = "layer" if extractor_mode == "layer_norm" else ("group" if i == 0 else "none")
            self.conv_layers.append(_ConvBlock(cin, cout, k, s, norm, conv_bias))
            cin = cout
        self.downsampling_factor = math.prod(s for _, _, s in layers)
        self.layer_norm = nn.LayerNorm(cin)
        self.post_extract_proj = nn.Linear(cin, embed_dim) if cin != embed_dim else None
        self.pos_conv = nn.Conv1d(
            embed_dim, embed_dim, conv_pos, padding=conv_pos // 2, groups=conv_pos_groups
        )
        self.trim = 1 - conv_pos % 2  # an even kernel gives one frame too many (SamePad)
        self.layers = nn.ModuleList(self.build_layer(i) for i in range(num_layers))
        self.encoder_layer_norm = nn.LayerNorm(embed_dim)

    def build_layer(self, index: int) -> nn.Module:
        c = self.config
        return nn.TransformerEncoderLayer(
            c["embed_dim"],
            c["num_heads"],
            c["ffn_dim"],
            c["dropout"],
            "gelu",
            batch_first=True,
            norm_first=c["layer_norm_first"],
        )

    def run_layer(self, layer: nn.Module, h: torch.Tensor, pad: torch.Tensor, carry: Any):
        return layer(h, src_key_padding_mask=pad), carry

    def output_lens(self, lens: torch.Tensor) -> torch.Tensor:
        for block in self.conv_layers:
            k, s = block.conv.kernel_size[0], block.conv.stride[0]
            lens = (torch.div(lens - k, s, rounding_mode="floor") + 1).clamp(min=0)
        return lens

    def forward(self, x, lens):
        y = mask_padding(x, lens).transpose(1, 2)  # (N, 1, S)
        for block in self.conv_layers:
            y, lens = block(y, lens)
        feats = self.layer_norm(y.transpose(1, 2))
        if self.post_extract_proj is not None:
            feats = self.post_extract_proj(feats)
        h = mask_padding(feats, lens)
        conv = self.pos_conv(h.transpose(1, 2))
        if self.trim:
            conv = conv[..., :-1]
        h = h + nn.functional.gelu(conv).transpose(1, 2)
        if not self.layer_norm_first:
            h = self.encoder_layer_norm(h)
        pad = ~frame_mask(lens, h.shape[1])
        states = []
        carry = None  # what a layer hands the next (WavLM's position bias)
        for layer in self.layers:
            states.append(mask_padding(h, lens))
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                continue
            h, carry = self.run_layer(layer, h, pad, carry)
        if self.layer_norm_first:
            h = self.encoder_layer_norm(h)
        h = mask_padding(h, lens)
        states.append(h)
        return EncoderOutput(h, lens, tuple(states))


def fold_weight_norm(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """The effective weight of fairseq's weight-normalised position convolution (dim=2), from
    either of torch's layouts (weight_g/weight_v, or parametrizations), or a plain weight."""
    g = state.get(f"{prefix}weight_g", state.get(f"{prefix}parametrizations.weight.original0"))
    v = state.get(f"{prefix}weight_v", state.get(f"{prefix}parametrizations.weight.original1"))
    if g is None or v is None:
        return state[f"{prefix}weight"]
    return v * (g / v.norm(dim=(0, 1), keepdim=True))


def fairseq_layer_state(state: dict[str, torch.Tensor], theirs: str, ours: str) -> dict[str, Any]:
    """A fairseq TransformerSentenceEncoderLayer's weights (prefix ``theirs``) renamed for
    torch's TransformerEncoderLayer (prefix ``ours``): q/k/v stacked into in_proj."""
    out = {
        f"{ours}self_attn.in_proj_{kind}": torch.cat(
            [state[f"{theirs}self_attn.{x}_proj.{kind}"] for x in "qkv"]
        )
        for kind in ("weight", "bias")
    }
    for name, mine in (
        ("self_attn.out_proj", "self_attn.out_proj"),
        ("self_attn_layer_norm", "norm1"),
        ("final_layer_norm", "norm2"),
        ("fc1", "linear1"),
        ("fc2", "linear2"),
    ):
        for kind in ("weight", "bias"):
            out[f"{ours}{mine}.{kind}"] = state[f"{theirs}{name}.{kind}"]
    return out


def fairseq_state(
    state: dict[str, torch.Tensor], num_layers: int, conv_count: int
) -> dict[str, Any]:
    """A fairseq wav2vec 2.0 / HuBERT model's weights renamed for :class:`Wav2Vec2Encoder`
    (the position convolution's weight normalisation folded; pre-training heads dropped)."""
    ours: dict[str, Any] = {}
    for i in range(conv_count):
        p = f"feature_extractor.conv_layers.{i}."
        ours[f"conv_layers.{i}.conv.weight"] = state[p + "0.weight"]
        if p + "0.bias" in state:
            ours[f"conv_layers.{i}.conv.bias"] = state[p + "0.bias"]
        for norm in ("2.", "2.1."):  # GroupNorm, or the LayerNorm between two transposes
            if p + norm + "weight" in state:
                ours[f"conv_layers.{i}.norm.weight"] = state[p + norm + "weight"]
                ours[f"conv_layers.{i}.norm.bias"] = state[p + norm + "bias"]
    for name in ("layer_norm", "post_extract_proj"):
        for kind in ("weight", "bias"):
            if f"{name}.{kind}" in state:
                ours[f"{name}.{kind}"] = state[f"{name}.{kind}"]
    ours["pos_conv.weight"] = fold_weight_norm(state, "encoder.pos_conv.0.")
    ours["pos_conv.bias"] = state["encoder.pos_conv.0.bias"]
    for j in range(num_layers):
        ours.update(fairseq_layer_state(state, f"encoder.layers.{j}.", f"layers.{j}."))
    ours["encoder_layer_norm.weight"] = state["encoder.layer_norm.weight"]
    ours["encoder_layer_norm.bias"] = state["encoder.layer_norm.bias"]
    return ours
