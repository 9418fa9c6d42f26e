"""The upstream of a probe (an scpc checkpoint, frozen or fine-tuned) and its featurizer.

The upstream returns the hidden states of the layers the featurizer uses, stacked as
(B, L, T, C), with the number of valid frames of each utterance. The featurizer turns them
into one (B, T, C) sequence: either one chosen layer (``--layer N``), or SUPERB's learnable
weighted sum ``sum_l softmax(w)_l h_l`` with ``w`` initialised to zeros, so that it starts as
the mean of the layers.

A weighted sum needs layers of one size. When an encoder's layers differ in size (a conv
latent of 512 channels under a 256-channel context), the sum covers the layers that have the
size of the last one; the others can still be probed one at a time with ``--layer``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scpc.audio import SAMPLE_RATE
from scpc.errors import ScpcError
from scpc.kaldi_tables import frame_shift, read_scp
from scpc.masks import utterance_cmvn
from scpc.models.checkpoint import InferenceModel
from scpc.models.inference import layer_sizes, pad_for


def select_layers(sizes: Sequence[int], layer: int | None) -> list[int]:
    """The hidden states a featurizer uses: ``layer`` alone (negative counts from the last),
    or, for the weighted sum (``None``), every layer of the last layer's size."""
    if layer is None:
        return [i for i, size in enumerate(sizes) if size == sizes[-1]]
    if not -len(sizes) <= layer < len(sizes):
        raise ScpcError(
            f"--layer {layer}: the upstream has {len(sizes)} layers (0 to {len(sizes) - 1}, "
            "or negative from the last)"
        )
    return [layer % len(sizes)]


class Upstream(nn.Module):
    """An inference model whose selected hidden states are the probe's input.

    Frozen (the default), it stays in eval mode, takes no gradient and runs under no_grad;
    fine-tuned, it trains with the head.
    """

    def __init__(
        self,
        model: InferenceModel,
        layers: Sequence[int] | None = None,
        finetune: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.finetune = finetune
        if device is None:  # where the model's weights (or, parameterless, its buffers) are
            state = [*model.parameters(), *model.buffers()]
            device = state[0].device if state else torch.device("cpu")
        self.sizes = layer_sizes(model, device)
        self.layers = list(layers) if layers is not None else select_layers(self.sizes, None)
        if not finetune:
            model.requires_grad_(False)
        self.train(False)

    @property
    def downsample_rate(self) -> int:
        """Audio samples per output frame."""
        return self.model.downsampling_factor

    @property
    def output_size(self) -> int:
        return self.sizes[self.layers[0]]

    def train(self, mode: bool = True) -> Upstream:
        super().train(mode)
        if not self.finetune:
            self.model.eval()
        return self

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S) zero-padded audio and (B,) sample counts to (B, L, T, C) and (B,) frames."""
        grad = contextlib.nullcontext() if self.finetune else torch.no_grad()
        with grad:
            out = self.model(wav, lens)
            hidden = torch.stack([out.hidden_states[i] for i in self.layers], 1)
            frames = out.lens
            return hidden[:, :, : int(frames.max())], frames

    def encode(
        self, wavs: Sequence[np.ndarray | torch.Tensor], device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A list of 1-D waveforms, padded as extraction pads them (a padded batch gives the
        frames each utterance gives alone), through :meth:`forward`."""
        arrays = [w.numpy() if isinstance(w, torch.Tensor) else w for w in wavs]
        x, lens = pad_for(self.model, arrays)
        return self(x.to(device), lens.to(device))


class TableUpstream(nn.Module):
    """Precomputed features (a Kaldi ``feats.scp``, Kaldi's own or ``scpc-a2r --format kaldi``)
    as a frozen upstream of one layer. The matrix of an example is the table's entry under its
    utterance id; the frame rate is the ``frame_shift`` file beside the table (10 ms without
    one). It has no audio path: the runner reads every split through :class:`TableFeatures`,
    so it cannot be fine-tuned nor fed augmented audio."""

    finetune = False

    def __init__(self, scp: str | os.PathLike) -> None:
        super().__init__()
        self.scp = Path(scp)
        self.table = read_scp(scp)
        first = next(iter(self.table.values())).read()
        if first.ndim != 2:
            raise ScpcError(f"{self.scp}: expected (frames, features) matrices, got {first.shape}")
        self.sizes = [int(first.shape[1])]
        self.layers = [0]
        self.model = nn.Module()  # no weights; Probe saves an upstream's only when fine-tuned
        self._rate = round(frame_shift(scp) * SAMPLE_RATE)

    @property
    def downsample_rate(self) -> int:
        return self._rate

    @property
    def output_size(self) -> int:
        return self.sizes[0]

    def features(self, uttid: str) -> torch.Tensor:
        """(1, T, C) float32 of one utterance; an error naming the table when it is missing,
        has another width or holds NaN/inf."""
        entry = self.table.get(uttid)
        if entry is None:
            raise ScpcError(f"{self.scp}: no features of utterance {uttid}")
        x = torch.from_numpy(entry.read()).float()
        if x.dim() != 2 or x.shape[1] != self.sizes[0] or x.shape[0] == 0:
            raise ScpcError(f"{entry}: shape {tuple(x.shape)}, expected (frames, {self.sizes[0]})")
        if not torch.isfinite(x).all():
            raise ScpcError(f"{entry}: NaN or infinity in the features")
        return x[None]

    def forward(self, *args, **kwargs):
        raise ScpcError(
            f"{self.scp}: precomputed features cannot be computed from audio (fine-tuning or "
            "audio augmentation needs a checkpoint upstream)"
        )

    encode = forward


class Featurizer(nn.Module):
    """(B, L, T, C) hidden states to (B, T, C): a softmax-weighted sum over L (one layer:
    that layer). Options, both off by default as in SUPERB: ``layer_norm`` normalises each
    layer's frames before the sum; ``cmvn`` standardises the result per utterance and channel
    over its valid frames (what s3prl's filter-bank and MFCC baseline upstreams do to their
    features; our front-ends keep them raw)."""

    def __init__(self, num_layers: int, layer_norm: bool = False, cmvn: bool = False) -> None:
        super().__init__()
        self.layer_norm, self.cmvn = layer_norm, cmvn
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def layer_weights(self) -> list[float]:
        return [float(w) for w in F.softmax(self.weights.detach().float(), 0)]

    def forward(self, hidden: torch.Tensor, lens: torch.Tensor | None = None) -> torch.Tensor:
        if hidden.shape[1] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} layers, got {hidden.shape[1]}")
        if self.layer_norm:
            hidden = F.layer_norm(hidden, hidden.shape[-1:])
        if hidden.shape[1] == 1:
            x = hidden[:, 0]
        else:
            w = F.softmax(self.weights, 0).to(hidden.dtype)
            x = torch.einsum("l,bltc->btc", w, hidden)
        return utterance_cmvn(x, lens) if self.cmvn else x
