"""WavLM (Chen et al. 2022): the wav2vec 2.0 / HuBERT architecture with a gated relative
position bias in self-attention, as its fairseq-style code (s3prl's ``upstream/wavlm``)
computes it, so that its weights load by name.

The first layer holds a bucketed relative position embedding (``num_buckets`` buckets, log
spaced up to ``max_distance`` frames, one bias per head) and hands the bias it computes to
the later layers; with ``gru_rel_pos`` each layer scales it per head and query frame by a gate
computed from the query (``grep_linear``, ``grep_a``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from scpc.models.wav2vec2 import Wav2Vec2Encoder, fairseq_state


def relative_buckets(total: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """(T, T) bucket of key position minus query position, bidirectional (T5's scheme)."""
    rel = torch.arange(total)[None, :] - torch.arange(total)[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).long() * half
    rel = rel.abs()
    exact = half // 2
    large = (
        exact
        + (torch.log(rel.float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    )
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return buckets + torch.where(rel < exact, rel, large)


class _GatedRelativeAttention(nn.Module):
    def __init__(self, dim, heads, dropout, bias: bool, num_buckets, max_distance, gated: bool):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads) if bias else None
        self.gated = gated
        if gated:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(self, x: torch.Tensor, pad: torch.Tensor, position_bias: torch.Tensor | None):
        n, t, c = x.shape
        if position_bias is None and self.relative_attention_bias is not None:
            buckets = relative_buckets(t, self.num_buckets, self.max_distance).to(x.device)
            position_bias = self.relative_attention_bias(buckets).permute(2, 0, 1)  # (H, T, T)
        heads = x.view(n, t, self.heads, self.head_dim).transpose(1, 2)  # (N, H, T, d)
        bias = x.new_zeros(1, 1, t, t)
        if position_bias is not None:
            bias = position_bias[None]
            if self.gated:
                gates = torch.sigmoid(self.grep_linear(heads).view(n, self.heads, t, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias

        def split(y):
            return y.view(n, t, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x) * self.head_dim**-0.5)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        scores = (q @ k.transpose(-1, -2) + bias).masked_fill(pad[:, None, None, :], float("-inf"))
        out = self.dropout(scores.softmax(-1)) @ v
        return self.out_proj(out.transpose(1, 2).reshape(n, t, c)), position_bias


class _WavLMLayer(nn.Module):
    def __init__(self, dim, heads, ffn, dropout, pre_ln, bias, num_buckets, max_distance, gated):
        super().__init__()
        self.self_attn = _GatedRelativeAttention(
            dim, heads, dropout, bias, num_buckets, max_distance, gated
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.pre_ln = pre_ln

    def forward(self, x, pad, position_bias):
        if self.pre_ln:
            a, position_bias = self.self_attn(self.self_attn_layer_norm(x), pad, position_bias)
            x = x + self.dropout(a)
            return x + self.dropout(
                self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))
            ), position_bias
        a, position_bias = self.self_attn(x, pad, position_bias)
        x = self.self_attn_layer_norm(x + self.dropout(a))
        x = self.final_layer_norm(x + self.dropout(self.fc2(nn.functional.gelu(self.fc1(x)))))
        return x, position_bias


class WavLMEncoder(Wav2Vec2Encoder, json_name="wavlm"):
    def __init__(
        self,
        *,
        num_buckets: int = 320,
        max_distance: int = 800,
        gru_rel_pos: bool = True,
        relative_position_embedding: bool = True,
        **base: Any,
    ) -> None:
        self._relative = {
            "num_buckets": num_buckets,
            "max_distance": max_distance,
            "gru_rel_pos": gru_rel_pos,
            "relative_position_embedding": relative_position_embedding,
        }
        super().__init__(**base)
        self.config = {**self.config, **self._relative}

    def build_layer(self, index: int) -> nn.Module:
        c, r = self.config, self._relative
        return _WavLMLayer(
            c["embed_dim"],
            c["num_heads"],
            c["ffn_dim"],
            c["dropout"],
            c["layer_norm_first"],
            r["relative_position_embedding"] and index == 0,
            r["num_buckets"],
            r["max_distance"],
            r["gru_rel_pos"],
        )

    def run_layer(self, layer, h, pad, carry):
        return layer(h, pad, carry)


def wavlm_state(state: dict[str, torch.Tensor], num_layers: int, conv_count: int) -> dict[str, Any]:
    """WavLM's weights renamed for :class:`WavLMEncoder` (fairseq names kept in the layers)."""
    ours = fairseq_state(state, 0, conv_count)  # the extractor, projections, position conv
    for j in range(num_layers):
        p = f"encoder.layers.{j}."
        for key, value in state.items():
            if key.startswith(p):
                ours[f"layers.{j}.{key[len(p) :]}"] = value
        k_bias = f"layers.{j}.self_attn.k_proj.bias"
        if k_bias not in ours:  # rescale_init checkpoints have none: a zero bias
            ours[k_bias] = torch.zeros_like(ours[f"layers.{j}.self_attn.q_proj.bias"])
    return ours
