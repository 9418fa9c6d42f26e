"""The BERT-style Transformer of Mockingjay, TERA and AALBERT (Liu et al. 2020, 2021; Chi et
al. 2021), as s3prl's ``upstream/mockingjay`` model computes it, so that their released
weights load by name.

Input frames go through a linear map to ``hidden_size``, plus the sinusoidal position table
(positions from 0 in each utterance or chunk), a LayerNorm with ``layer_norm_eps`` inside the
square root (TF style) and dropout. Then ``num_layers`` layers, post-LN (BERT) or pre-LN
(with a LayerNorm per exposed state); AALBERT shares one layer across all (``share_layers``).
Padded keys get -10000 added to their attention scores, as the original. The hidden states
are the input representation and every layer's output (``num_layers + 1``, s3prl's order).
Utterances longer than ``max_chunk`` frames (the original's ``sequence_length``) are cut into
``ceil(T / max_chunk)`` equal chunks (``torch.chunk``'s sizes) that are encoded separately.
The original chunks a padded batch by its longest utterance, so its output for an utterance
depends on the batch; here each utterance is chunked by its own length, as the original
chunks it alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.masks import frame_mask, mask_padding
from scpc.models.encoders import Encoder, EncoderOutput, constructor_args

ACTIVATIONS = {
    "gelu": lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))),
    "relu": torch.relu,
    "swish": lambda x: x * torch.sigmoid(x),
}
ATTENTION_MASK = -10000.0  # the original's additive mask of padded keys


class TfLayerNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - mean) / torch.sqrt(var + self.eps)) + self.bias


def sinusoid_table(total: int, size: int) -> torch.Tensor:
    """(total, size) position table in float64 then float32, as the original's numpy one."""
    pos = np.arange(total, dtype=np.float64)[:, None]
    angle = pos / np.power(10000, 2 * (np.arange(size) // 2) / size)[None]
    angle[:, 0::2] = np.sin(angle[:, 0::2])
    angle[:, 1::2] = np.cos(angle[:, 1::2])
    return torch.from_numpy(angle).float()


class _InputRepresentations(nn.Module):
    def __init__(self, input_size: int, hidden: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.spec_transform = nn.Linear(input_size, hidden)
        self.LayerNorm = TfLayerNorm(hidden, eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = sinusoid_table(x.shape[1], self.spec_transform.out_features).to(x)
        return self.dropout(self.LayerNorm(self.spec_transform(x) + pos))


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, c // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(c // self.heads) + bias
        out = self.dropout(scores.softmax(-1)) @ v
        return out.transpose(1, 2).reshape(n, t, c)


class _Residual(nn.Module):
    """dense, dropout, + input, then LayerNorm unless pre-LN (``output`` in the original)."""

    def __init__(self, cin: int, hidden: int, eps: float, dropout: float, pre_ln: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(cin, hidden)
        self.dropout = nn.Dropout(dropout)
        self.LayerNorm = TfLayerNorm(hidden, eps)
        self.pre_ln = pre_ln

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.dense(x)) + skip
        return y if self.pre_ln else self.LayerNorm(y)


class _Attention(nn.Module):
    def __init__(self, hidden, heads, eps, dropout, attention_dropout, pre_ln) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden, heads, attention_dropout)
        self.output = _Residual(hidden, hidden, eps, dropout, pre_ln)
        self.pre_ln = pre_ln

    def forward(self, x, bias):
        y = self.output.LayerNorm(x) if self.pre_ln else x
        return self.output(self.self(y, bias), x)


class _Intermediate(nn.Module):
    def __init__(self, hidden: int, size: int, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, size)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x):
        return self.activation(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, hidden, heads, size, activation, eps, dropout, attention_dropout, pre_ln):
        super().__init__()
        self.attention = _Attention(hidden, heads, eps, dropout, attention_dropout, pre_ln)
        self.intermediate = _Intermediate(hidden, size, activation)
        self.output = _Residual(size, hidden, eps, dropout, pre_ln)
        self.pre_ln = pre_ln

    def forward(self, x, bias):
        a = self.attention(x, bias)
        return self.output(self.intermediate(self.output.LayerNorm(a) if self.pre_ln else a), a)


class _Stack(nn.Module):
    def __init__(self, settings: dict, num_layers: int, shared: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(**settings) for _ in range(1 if shared else num_layers))
        if settings["pre_ln"]:  # one LayerNorm per exposed state
            self.LayerNorm = nn.ModuleList(
                TfLayerNorm(settings["hidden"], settings["eps"]) for _ in range(num_layers + 1)
            )


class BertEncoder(Encoder, json_name="bert"):
    def __init__(
        self,
        input_size: int,
        hidden_size: int = 768,
        num_layers: int = 3,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        activation: str = "gelu",
        layer_norm_eps: float = 1e-12,
        share_layers: bool = False,
        pre_layer_norm: bool = False,
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        max_chunk: int = 0,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        if activation not in ACTIVATIONS:
            raise ScpcError(f"bert encoder: unknown activation {activation!r}")
        if hidden_size % num_heads:
            raise ScpcError(f"bert encoder: {num_heads} heads do not divide {hidden_size}")
        self.input_size, self.output_size = input_size, hidden_size
        self.num_layers, self.max_chunk, self.pre_ln = num_layers, max_chunk, pre_layer_norm
        self.input_representations = _InputRepresentations(
            input_size, hidden_size, layer_norm_eps, dropout
        )
        settings = {
            "hidden": hidden_size,
            "heads": num_heads,
            "size": intermediate_size,
            "activation": activation,
            "eps": layer_norm_eps,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "pre_ln": pre_layer_norm,
        }
        self.encoder = _Stack(settings, num_layers, share_layers)

    def _encode(self, x: torch.Tensor, lens: torch.Tensor) -> list[torch.Tensor]:
        keep = frame_mask(lens, x.shape[1])
        bias = (~keep).to(x.dtype)[:, None, None, :] * ATTENTION_MASK
        h = self.input_representations(x)
        layers = self.encoder.layer
        states = []
        for i in range(self.num_layers):
            states.append(self.encoder.LayerNorm[i](h) if self.pre_ln else h)
            h = layers[i % len(layers)](h, bias)
        states.append(self.encoder.LayerNorm[-1](h) if self.pre_ln else h)
        return [mask_padding(s, lens) for s in states]

    def forward(self, x, lens):
        x = mask_padding(x, lens)
        if not self.max_chunk or x.shape[1] <= self.max_chunk:
            states = self._encode(x, lens)
            return EncoderOutput(states[-1], lens, tuple(states))
        # each utterance alone as the original runs it: torch.chunk's sizes, in order
        pieces = []  # (utterance, start, length)
        for n, length in enumerate(lens.tolist()):
            size = math.ceil(length / max(1, math.ceil(length / self.max_chunk)))
            pieces += [(n, s, min(size, length - s)) for s in range(0, length, max(size, 1))]
        width = max(p[2] for p in pieces)
        chunks = x.new_zeros(len(pieces), width, x.shape[2])
        for i, (n, s, k) in enumerate(pieces):
            chunks[i, :k] = x[n, s : s + k]
        chunk_lens = torch.tensor([p[2] for p in pieces], device=lens.device)
        encoded = self._encode(chunks, chunk_lens)
        states = [x.new_zeros(*x.shape[:2], self.output_size) for _ in encoded]
        for i, (n, s, k) in enumerate(pieces):
            for state, chunk in zip(states, encoded):
                state[n, s : s + k] = chunk[i, :k]
        return EncoderOutput(states[-1], lens, tuple(states))
