"""SPIRAL's encoder (Huang et al., ICLR 2022): convolutional downsampling between blocks of
pre-LN Transformer layers, down to 80 ms frames.

Each block: 1-D convolutions (``[out_channels, kernel, stride]``, optionally a fourth item,
the activation: "relu", the default, or "none"; padding ``kernel // 2``, or SPIRAL's
TensorFlow-style "same" padding with the block's ``padding: tf``), each followed by a LayerNorm over
channels, the activation and dropout; then a convolutional relative
position embedding (wav2vec 2.0's: a grouped convolution of ``pos_conv_kernel`` frames and a
GELU, added to its input); then pre-LN Transformer layers (GELU) and a final LayerNorm.
``layerdrop`` skips each layer of a block with that probability in training. SPIRAL base is
two blocks: 128 -> 384 (k5 s2) -> 512 (k5 s2) -> 512 (k1, no activation) with 2 layers of
512 (40 ms), then -> 1536 (k5 s2) -> 768 (k1, no activation) with 10 layers of 768 (80 ms). The exposed hidden states are the
last block's layers (they alone run at the output frame rate).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask, mask_padding
from scpc.models.encoders import Encoder, EncoderOutput, constructor_args

ACTIVATIONS = {"relu": nn.ReLU, "none": nn.Identity}


class _ConvLayer(nn.Module):
    """Convolution, LayerNorm over channels, activation, dropout; padding zeroed.

    ``padding`` "symmetric": ``kernel // 2`` on each side. "tf": SPIRAL's TensorFlow-style
    "same" padding, ``ceil(T / stride)`` frames: a stride-2 layer pads ``kernel // 2 - 1``
    before and ``kernel // 2`` after when its input has an even number of channels (the
    original tests the parity of ``x.size(-2)``, the channels of its (N, C, T) input), else
    ``kernel // 2`` on both sides."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        dropout: float,
        activation: str = "relu",
        padding: str = "symmetric",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ScpcError(f"spiral: unknown conv activation {activation!r} (relu or none)")
        if padding not in ("symmetric", "tf"):
            raise ScpcError(f"spiral: unknown conv padding {padding!r} (symmetric or tf)")
        self.tf = padding == "tf"
        self.conv = nn.Conv1d(cin, cout, kernel, stride, 0 if self.tf else kernel // 2)
        self.norm = nn.LayerNorm(cout)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.pad_left = kernel // 2 - (1 if stride == 2 and cin % 2 == 0 else 0)

    def out_lens(self, lens: torch.Tensor) -> torch.Tensor:
        k, s, p = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        if self.tf:
            return torch.div(lens + s - 1, s, rounding_mode="floor")
        return torch.div(lens + 2 * p - k, s, rounding_mode="floor") + 1

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = mask_padding(x, lens).transpose(1, 2)
        if self.tf:
            k, s = self.conv.kernel_size[0], self.conv.stride[0]
            frames = -(-y.shape[2] // s)
            right = s * (frames - 1) - self.pad_left + k - y.shape[2]
            y = nn.functional.pad(y, (self.pad_left, max(right, 0)))
        y = self.conv(y).transpose(1, 2)
        if self.tf:
            y = y[:, :frames]
        lens = self.out_lens(lens)
        return mask_padding(self.dropout(self.activation(self.norm(y))), lens), lens


class _ConvPosition(nn.Module):
    """x + GELU(grouped conv(x)): relative position information (wav2vec 2.0)."""

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        if channels % groups:
            raise ScpcError(f"spiral: {groups} position-conv groups do not divide {channels}")
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=groups)
        self.trim = 1 - kernel % 2  # an even kernel gives one frame too many

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        y = self.conv(mask_padding(x, lens).transpose(1, 2))
        if self.trim:
            y = y[..., :-1]
        return x + torch.nn.functional.gelu(y.transpose(1, 2))


class _Block(nn.Module):
    def __init__(self, cin: int, spec: dict[str, Any], pos_kernel, pos_groups, dropout) -> None:
        super().__init__()
        padding = spec.get("padding", "symmetric")
        self.convs = nn.ModuleList()
        for conv in spec["convs"]:
            if len(conv) not in (3, 4):
                raise ScpcError(
                    f"spiral: a conv is [out, kernel, stride(, activation)], got {conv}"
                )
            out, k, s, *act = conv
            self.convs.append(_ConvLayer(cin, out, k, s, dropout, *(act or ["relu"]), padding))
            cin = out
        if cin % spec["num_heads"]:
            raise ScpcError(f"spiral: {spec['num_heads']} heads do not divide {cin} channels")
        self.position = _ConvPosition(cin, pos_kernel, pos_groups)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                cin,
                spec["num_heads"],
                spec["dim_feedforward"],
                dropout,
                "gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(spec["num_layers"])
        )
        self.norm = nn.LayerNorm(cin)
        self.output_size = cin
        self.factor = math.prod(conv[2] for conv in spec["convs"])


class SpiralEncoder(Encoder, json_name="spiral"):
    def __init__(
        self,
        input_size: int,
        blocks: list[dict[str, Any]],
        pos_conv_kernel: int = 128,
        pos_conv_groups: int = 16,
        dropout: float = 0.1,
        layerdrop: float = 0.0,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        if not blocks:
            raise ScpcError("spiral: at least one block")
        for b in blocks:
            missing = {"convs", "num_layers", "num_heads", "dim_feedforward"} - set(b)
            if missing:
                raise ScpcError(f"spiral: a block lacks {', '.join(sorted(missing))}")
        self.input_size, self.layerdrop = input_size, layerdrop
        self.blocks = nn.ModuleList()
        size = input_size
        for b in blocks:
            block = _Block(size, b, pos_conv_kernel, pos_conv_groups, dropout)
            self.blocks.append(block)
            size = block.output_size
        self.output_size = size
        self.downsampling_factor = math.prod(b.factor for b in self.blocks)

    def output_lens(self, lens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            for conv in block.convs:
                lens = conv.out_lens(lens)
        return lens

    def forward(self, x, lens):
        states: list[torch.Tensor] = []
        for block in self.blocks:
            for conv in block.convs:
                x, lens = conv(x, lens)
            x = block.position(x, lens)
            pad = ~frame_mask(lens, x.shape[1])
            states = []
            for layer in block.layers:
                if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                    continue
                x = mask_padding(layer(x, src_key_padding_mask=pad), lens)
                states.append(x)
            x = mask_padding(block.norm(x), lens)
        if states:
            states[-1] = x  # the last layer's output after the block's final norm
        return EncoderOutput(x, lens, tuple(states) or (x,))
