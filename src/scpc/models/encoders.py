"""Encoders over padded batches ``(N, T, C)`` with lengths ``(N,)``.

Every encoder returns its output, the output lengths, and the hidden states of all the
layers it exposes for probing (all at its output frame rate, equal shapes); frames past a
length are zero. ``downsampling_factor`` is the exact number of input frames per output
frame. An encoder's constructor arguments are its JSON form, so a checkpoint can rebuild it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from scpc.errors import ScpcError
from scpc.masks import frame_mask, mask_padding, utterance_cmvn

_REGISTRY: dict[str, type[Encoder]] = {}


class EncoderOutput(NamedTuple):
    output: torch.Tensor  # (N, T', C')
    lens: torch.Tensor  # (N,)
    hidden_states: tuple[torch.Tensor, ...]  # exposed layers, each (N, T', C_l)


def constructor_args(scope: dict[str, Any]) -> dict[str, Any]:
    """A constructor's arguments, from its ``locals()`` taken before anything else is bound."""
    return {k: v for k, v in scope.items() if k not in ("self", "__class__")}


class Encoder(nn.Module):
    json_name: ClassVar[str]
    input_size: int
    output_size: int
    downsampling_factor: int = 1

    def __init_subclass__(cls, json_name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if json_name is not None:
            if json_name in _REGISTRY:
                raise ValueError(f"encoder name {json_name!r} is registered twice")
            cls.json_name = json_name
            _REGISTRY[json_name] = cls

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = config

    def to_json(self) -> dict[str, Any]:
        return {"name": self.json_name, "args": self.config}

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError


def encoder_from_json(spec: dict[str, Any]) -> Encoder:
    try:
        cls = _REGISTRY[spec["name"]]
    except KeyError:
        raise ScpcError(
            f"unknown encoder {spec.get('name')!r} (known: {', '.join(sorted(_REGISTRY))})"
        ) from None
    args = dict(spec.get("args", {}))
    if cls is EncoderSequence:
        return EncoderSequence(*(encoder_from_json(s) for s in args["encoders"]))
    return cls(**args)


class IdentityEncoder(Encoder, json_name="id"):
    def __init__(self, input_size: int) -> None:
        super().__init__(**constructor_args(locals()))
        self.input_size = self.output_size = input_size

    def forward(self, x, lens):
        x = mask_padding(x, lens)
        return EncoderOutput(x, lens, (x,))


class UtteranceCmvnEncoder(Encoder, json_name="cmvn"):
    """Per-utterance mean and variance normalisation of each channel over the real frames
    (TERA's input), no parameters. It exposes no hidden state: its output is the input's size,
    not a layer to probe."""

    def __init__(self, input_size: int, eps: float = 1e-5) -> None:
        super().__init__(**constructor_args(locals()))
        self.input_size = self.output_size = input_size
        self.eps = eps

    def forward(self, x, lens):
        return EncoderOutput(utterance_cmvn(x, lens, self.eps), lens, ())


NONLINEARITIES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "none": nn.Identity}


class FeedForwardEncoder(Encoder, json_name="ff"):
    """Dropout, a linear map per frame, a nonlinearity."""

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        nonlin: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        self.input_size, self.output_size = input_size, output_size
        self.net = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(input_size, output_size, bias), NONLINEARITIES[nonlin]()
        )

    def forward(self, x, lens):
        y = mask_padding(self.net(x), lens)
        return EncoderOutput(y, lens, (y,))


class _AffineNorm(nn.Module):
    """Normalisation of (N, C, T) followed by a learned per-channel scale and shift."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def statistics(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x, lens):
        mean, var = self.statistics(x, lens)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[:, None] + self.bias[:, None]


class ChannelNorm(_AffineNorm):
    """Per-frame normalisation over channels (CPC's). The variance is the unbiased one, as in
    CPC_audio and the reference scpc (``x.var(dim=1)``), so that their weights give their
    outputs."""

    def forward(self, x, lens):
        # (x - x.mean(1)) / sqrt(x.var(1) + eps) as one fused LayerNorm over channels of the
        # (N, T, C) view (3.5x faster than the strided reductions): LayerNorm's biased
        # variance with eps scaled by (C-1)/C, times sqrt((C-1)/C), is the unbiased one
        c = x.shape[1]
        shrink = (c - 1) / c if c > 1 else 1.0
        y = F.layer_norm(
            x.transpose(1, 2), (c,), self.weight * math.sqrt(shrink), self.bias, self.eps * shrink
        )
        return y.transpose(1, 2)


class MaskedInstanceNorm(_AffineNorm):
    """Per-utterance normalisation over time of each channel, counting only real frames."""

    def statistics(self, x, lens):
        keep = frame_mask(lens, x.shape[2]).unsqueeze(1).to(x.dtype)
        count = keep.sum(2, keepdim=True).clamp(min=1)
        mean = (x * keep).sum(2, keepdim=True) / count
        return mean, (((x - mean) * keep) ** 2).sum(2, keepdim=True) / count


class _BatchNorm(nn.BatchNorm1d):
    def forward(self, x, lens):  # statistics in training include padding frames, which are zero
        return super().forward(x)


class _NoNorm(nn.Identity):
    def forward(self, x, lens):
        return x


NORMS = {
    "none": lambda c: _NoNorm(),
    "batch": _BatchNorm,
    "channel": ChannelNorm,
    "instance": MaskedInstanceNorm,
}


class ConvEncoder(Encoder, json_name="conv"):
    """CPC's waveform encoder: five 1-D convolutions, 160 samples (10 ms) per output frame,
    receptive field 465 samples; norm then ReLU after each; padding zeroed after each."""

    KERNELS, STRIDES, PADDINGS = (10, 8, 4, 4, 4), (5, 4, 2, 2, 2), (3, 2, 1, 1, 1)

    def __init__(
        self, input_size: int = 1, output_size: int = 512, norm: str = "none", dropout: float = 0.0
    ) -> None:
        super().__init__(**constructor_args(locals()))
        if norm not in NORMS:
            raise ScpcError(f"conv encoder: unknown norm {norm!r} (one of {', '.join(NORMS)})")
        self.input_size, self.output_size = input_size, output_size
        self.downsampling_factor = math.prod(self.STRIDES)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, (k, s, p) in enumerate(zip(self.KERNELS, self.STRIDES, self.PADDINGS)):
            self.convs.append(
                nn.Conv1d(input_size if i == 0 else output_size, output_size, k, s, p)
            )
            self.norms.append(NORMS[norm](output_size))
        self.dropout = nn.Dropout(dropout)

    def output_lens(self, lens: torch.Tensor) -> torch.Tensor:
        for k, s, p in zip(self.KERNELS, self.STRIDES, self.PADDINGS):
            lens = torch.div(lens + 2 * p - k, s, rounding_mode="floor") + 1
        return lens.clamp(min=0)

    # Inference on a long input runs in windows of this many output frames (50 s), so that
    # memory stays that of a window: a 10-minute waveform at 128 channels otherwise holds
    # several 1 GB activations. The windows give what one pass gives (see forward_windowed).
    WINDOW_FRAMES = 5000
    FRAME_LOCAL_NORMS = (_NoNorm, _BatchNorm, ChannelNorm)

    def forward(self, x, lens):
        windowed = (
            not self.training
            and not torch.is_grad_enabled()
            and isinstance(self.norms[0], self.FRAME_LOCAL_NORMS)
            and lens.numel() > 0
            and int(self.output_lens(lens).max()) > self.WINDOW_FRAMES
        )
        if windowed:
            return self.forward_windowed(x, lens, self.WINDOW_FRAMES)
        x = mask_padding(x, lens).transpose(1, 2)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if i:
                x = self.dropout(x)
            x = conv(x)
            lens = (
                torch.div(
                    lens + 2 * conv.padding[0] - conv.kernel_size[0],
                    conv.stride[0],
                    rounding_mode="floor",
                )
                + 1
            )
            x = torch.relu(norm(x, lens))
            x = x * frame_mask(lens, x.shape[2]).unsqueeze(1).to(x.dtype)
        y = x.transpose(1, 2).contiguous()  # recurrent layers run ~10x slower on a strided view
        return EncoderOutput(y, lens, (y,))

    def forward_windowed(self, x, lens, window: int) -> EncoderOutput:
        """:meth:`forward` computed ``window`` output frames at a time, for inference with a
        frame-local norm. Each window's input slice covers its receptive field, zero where the
        full pass pads, and every layer's frames past the utterance are zeroed as there; the
        convolutions then see the same numbers (up to the float rounding of a shorter GEMM)."""
        x = mask_padding(x, lens).transpose(1, 2)  # (N, C, S)
        layer_lens, n = [], lens
        for k, s, p in zip(self.KERNELS, self.STRIDES, self.PADDINGS):
            n = torch.div(n + 2 * p - k, s, rounding_mode="floor") + 1
            layer_lens.append(n.clamp(min=0))
        total = int(layer_lens[-1].max())
        outs = []
        for t0 in range(0, total, window):
            spans = [(0, 0)] * len(self.convs)  # each layer's output frames in this window
            a, b = t0, min(total, t0 + window)
            for i in reversed(range(len(self.convs))):
                spans[i] = (a, b)
                k, s, p = self.KERNELS[i], self.STRIDES[i], self.PADDINGS[i]
                a, b = a * s - p, (b - 1) * s - p + k
            h = _slice_zero_padded(x, a, b)
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
                h = F.conv1d(h, conv.weight, conv.bias, conv.stride)
                lo, hi = spans[i]
                idx = torch.arange(lo, hi, device=h.device)
                keep = (idx[None] >= 0) & (idx[None] < layer_lens[i][:, None].to(h.device))
                h = torch.relu(norm(h, lens)) * keep.unsqueeze(1).to(h.dtype)
            outs.append(h)
        y = (
            torch.cat(outs, 2).transpose(1, 2).contiguous()
            if outs
            else x.new_zeros(x.shape[0], 0, self.output_size)
        )
        return EncoderOutput(y, layer_lens[-1], (y,))


def _slice_zero_padded(x: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """x[..., a:b] of (N, C, S), with zeros where [a, b) lies outside [0, S)."""
    lo, hi = max(a, 0), min(b, x.shape[2])
    inner = x[:, :, lo:hi] if hi > lo else x[:, :, :0]
    left = min(max(0, -a), b - a)
    right = (b - a) - left - inner.shape[2]
    return F.pad(inner, (left, right)) if left or right else inner


class RecurrentEncoder(Encoder, json_name="recur"):
    """Unidirectional LSTM/GRU/RNN layers; each layer is exposed.

    The layers run over the padded batch, not packed sequences: a unidirectional layer's
    output at frame t depends on frames <= t only, so trailing padding changes no valid frame
    (it is zeroed after each layer), and unpacked input takes torch's fused oneDNN kernels on
    CPU (packed input runs a small GEMM per time step: 15x slower in training, 2.4x in
    inference for cpc.small's 256-unit LSTM; bench/README.md).
    """

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        num_layers: int = 1,
        cell: str = "gru",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        if cell not in self.CELLS:
            raise ScpcError(
                f"recurrent encoder: unknown cell {cell!r} (one of {', '.join(self.CELLS)})"
            )
        self.input_size, self.output_size = input_size, output_size
        self.layers = nn.ModuleList(
            self.CELLS[cell](input_size if i == 0 else output_size, output_size, batch_first=True)
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, lens):
        states = []
        for i, rnn in enumerate(self.layers):
            if i:
                x = self.dropout(x)
            if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
                # oneDNN has no bf16 LSTM without AVX512-BF16: the layer runs in float32
                with torch.autocast("cpu", enabled=False):
                    x, _ = rnn(x.float())
            else:
                x, _ = rnn(x)
            x = mask_padding(x, lens)
            states.append(x)
        return EncoderOutput(x, lens, tuple(states))


class _Attention(Encoder):
    """Transformer layers (post-norm, as torch's) with a final LayerNorm; each layer exposed.

    ``max_width`` limits each frame's attention to itself and the ``max_width - 1`` frames
    before it (causal) or on each side (non-causal). ``position`` "alibi" adds a per-head bias
    linear in the distance (relative, so a frame's output does not depend on where the
    chunk starts); "sinusoid" adds the Transformer's absolute sinusoidal encoding to the
    input, then a LayerNorm and dropout (BERT's and TERA's input representation); "none" uses
    no positional information. ``activation`` is the feed-forward nonlinearity (relu, or gelu
    as BERT/TERA). ``share_layers`` applies one layer ``num_layers`` times (ALBERT, AALBERT).
    """

    causal: ClassVar[bool]

    def __init__(
        self,
        input_size: int,
        num_layers: int = 1,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        max_width: int | None = None,
        position: str = "none",
        dropout: float = 0.0,
        activation: str = "relu",
        share_layers: bool = False,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        if position not in ("none", "alibi", "sinusoid"):
            raise ScpcError(
                f"attention encoder: unknown position scheme {position!r} (none, alibi or sinusoid)"
            )
        if activation not in ("relu", "gelu"):
            raise ScpcError(f"attention encoder: unknown activation {activation!r} (relu or gelu)")
        if max_width is not None and max_width < 1:
            raise ScpcError(f"attention encoder: max_width must be at least 1, got {max_width}")
        self.input_size = self.output_size = input_size
        self.num_heads, self.max_width, self.position = num_heads, max_width, position
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                input_size, num_heads, dim_feedforward, dropout, activation, batch_first=True
            )
            for _ in range(1 if share_layers else num_layers)
        )
        self.norm = nn.LayerNorm(input_size)
        if position == "sinusoid":
            self.input_norm = nn.LayerNorm(input_size)
            self.input_dropout = nn.Dropout(dropout)
        # ALiBi's head slopes: a geometric sequence 2^(-8 h / H)
        self.register_buffer(
            "slopes",
            torch.tensor([2 ** (-8 * (h + 1) / num_heads) for h in range(num_heads)]),
            persistent=False,
        )

    def attention_bias(self, lens: torch.Tensor, total: int) -> torch.Tensor:
        """Additive mask (N * heads, T, T): -inf where a query may not look."""
        q = torch.arange(total, device=lens.device)[:, None]
        k = torch.arange(total, device=lens.device)[None, :]
        allowed = torch.ones(total, total, dtype=torch.bool, device=lens.device)
        if self.causal:
            allowed &= k <= q
        if self.max_width is not None:
            allowed &= (q - k).abs() < self.max_width
        allowed = allowed[None] & (k[None] < lens[:, None, None])  # no padded keys
        allowed |= torch.eye(total, dtype=torch.bool, device=lens.device)[None]  # no empty rows
        bias = torch.zeros(allowed.shape, device=lens.device).masked_fill(~allowed, float("-inf"))
        bias = bias.repeat_interleave(self.num_heads, 0)
        if self.position == "alibi":
            distance = -(q - k).abs().float()
            bias = bias + (self.slopes[:, None, None] * distance).repeat(len(lens), 1, 1)
        return bias

    def forward(self, x, lens):
        bias = self.attention_bias(lens, x.shape[1]).to(x.dtype)
        if self.position == "sinusoid":
            x = x + sinusoid_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
            x = self.input_dropout(self.input_norm(x))
        x = mask_padding(x, lens)
        states = []
        for i in range(self.num_layers):
            x = self.layers[i % len(self.layers)](x, src_mask=bias)
            if i == self.num_layers - 1:
                x = self.norm(x)
            x = mask_padding(x, lens)
            states.append(x)
        return EncoderOutput(x, lens, tuple(states))


def sinusoid_positions(total: int, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(total, size): sin at even channels, cos at odd, wavelengths 2 pi .. 10000 * 2 pi."""
    pos = torch.arange(total, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(
        torch.arange(0, size, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / size)
    )
    out = torch.zeros(total, size, device=device)
    out[:, 0::2] = torch.sin(pos * rate)
    out[:, 1::2] = torch.cos(pos * rate[: size // 2])
    return out


class CausalSelfAttentionEncoder(_Attention, json_name="csa"):
    causal = True


class SelfAttentionEncoder(_Attention, json_name="sa"):
    causal = False


class CausalConvEncoder(Encoder, json_name="cconv"):
    """Stride-1 convolutions padded on the left only: frame t sees frames t-(K-1)L ... t."""

    def __init__(
        self,
        input_size: int,
        output_size: int = 512,
        num_layers: int = 1,
        kernel_size: int = 8,
        nonlin: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(**constructor_args(locals()))
        self.input_size, self.output_size, self.kernel_size = input_size, output_size, kernel_size
        self.convs = nn.ModuleList(
            nn.Conv1d(input_size if i == 0 else output_size, output_size, kernel_size)
            for i in range(num_layers)
        )
        self.nonlin = NONLINEARITIES[nonlin]()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, lens):
        x = mask_padding(x, lens).transpose(1, 2)
        states = []
        for conv in self.convs:
            x = self.dropout(self.nonlin(conv(nn.functional.pad(x, (self.kernel_size - 1, 0)))))
            states.append(mask_padding(x.transpose(1, 2), lens))
        return EncoderOutput(states[-1], lens, tuple(states))


class EncoderSequence(Encoder, json_name="seq"):
    """Encoders applied in turn (a latent encoder, then a context encoder); exposes the
    hidden states of every member that runs at the final frame rate."""

    def __init__(self, *encoders: Encoder) -> None:
        super().__init__()
        if not encoders:
            raise ScpcError("an encoder sequence needs at least one encoder")
        for a, b in zip(encoders, encoders[1:]):
            if a.output_size != b.input_size:
                raise ScpcError(
                    f"{a.json_name} outputs {a.output_size} channels but {b.json_name} takes {b.input_size}"
                )
        self.encoders = nn.ModuleList(encoders)
        self.input_size, self.output_size = encoders[0].input_size, encoders[-1].output_size
        self.downsampling_factor = math.prod(e.downsampling_factor for e in encoders)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.json_name, "args": {"encoders": [e.to_json() for e in self.encoders]}}

    def forward(self, x, lens):
        states: list[torch.Tensor] = []
        for e in self.encoders:
            x, lens, hidden = e(x, lens)
            if e.downsampling_factor != 1:
                states = []  # earlier layers run at a finer frame rate
            states.extend(hidden)
        return EncoderOutput(x, lens, tuple(states))
