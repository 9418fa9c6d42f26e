"""The baseline acoustic model: MVN, frame stacking, a bidirectional LSTM and a CTC output.

As the reference's ``asr-baseline.py`` model: the ``(T, C)`` representation is normalised
with the training set's mean and deviation (held as buffers, so a saved model needs nothing
else), ``stack`` consecutive frames are concatenated, ``num_layers`` BiLSTM layers of
``hidden_size`` units per direction read them (dropout after each), and a linear layer gives
log-probabilities over the BPE pieces and the blank (the last class). The BiLSTM is the
SUPERB ASR head's (:class:`~scpc.nn.ctc.BiLSTMCTC`, without its projection).

A length that ``stack`` does not divide is rounded up: the last step holds the remaining
frames and zeros, which after normalisation is the training mean. (The reference rounds
down and drops up to ``stack - 1`` final frames.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.io import load_torch, save_torch
from scpc.masks import frame_mask
from scpc.nn.ctc import BiLSTMCTC

MODEL_FORMAT = "scpc-baseline-model-1"


def stack_frames(x: torch.Tensor, lens: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, C) -> (B, ceil(T / k), k * C): step j holds frames jk .. jk + k - 1 in order.

    Frames past each length are zeroed first, so a partial last step is completed with
    zeros; lengths become ``ceil(lens / k)``.
    """
    if k == 1:
        return x, lens
    b, t, c = x.shape
    x = x * frame_mask(lens.to(x.device), t)[..., None].to(x.dtype)
    rest = -t % k
    if rest:
        x = torch.cat([x, x.new_zeros(b, rest, c)], 1)
    return x.reshape(b, (t + rest) // k, k * c), (lens + k - 1) // k


class BaselineModel(nn.Module):
    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden_size: int = 1024,
        num_layers: int = 2,
        stack: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.arch = {
            "input_size": input_size,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "stack": stack,
        }
        self.stack = stack
        self.register_buffer("mean", torch.zeros(input_size))
        self.register_buffer("std", torch.ones(input_size))
        self.net = BiLSTMCTC(
            stack * input_size, num_classes, None, [hidden_size] * num_layers, dropout
        )

    def set_mvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ScpcError(
                f"MVN statistics of {mean.numel()} channels for a model of {self.mean.numel()}"
            )
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(
        self,
        x: torch.Tensor,
        lens: torch.Tensor,
        augment: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C) raw representations -> (B, T', classes) log-probabilities, (B,) T'.

        ``augment`` (SpecAugment, training only) sees the normalised, unstacked frames.
        """
        if x.shape[-1] != self.mean.numel():
            raise ScpcError(
                f"input has {x.shape[-1]} channels, the model expects {self.mean.numel()}"
            )
        mask = frame_mask(lens.to(x.device), x.shape[1])[..., None]
        x = ((x - self.mean) / self.std) * mask.to(x.dtype)
        if augment is not None:
            x = augment(x, lens)
        x, lens = stack_frames(x, lens, self.stack)
        return self.net(x, lens), lens


def save_model(
    path: str | os.PathLike, model: BaselineModel, vocab: list[str], provenance: dict[str, Any]
) -> None:
    """A self-contained model file: architecture, weights (MVN included) and output names."""
    state = {
        "format": MODEL_FORMAT,
        "arch": dict(model.arch),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocab": list(vocab),
        "provenance": provenance,
    }
    save_torch(state, path)


def load_model(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[BaselineModel, list[str], dict]:
    """(model in eval mode, output names with the blank last, provenance)."""
    state = load_torch(path, MODEL_FORMAT, "an scpc-baseline model")
    model = BaselineModel(**state["arch"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), state["vocab"], state["provenance"]


@torch.no_grad()
def infer(
    model: BaselineModel, reps, batch_size: int, device: torch.device | str
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(indices into ``reps``, (B, T', classes) log-probabilities, (B,) T') per batch."""
    from scpc.baseline.data import eval_batches, load_rep, pad

    was_training = model.training
    model.eval()
    try:
        for idx in eval_batches(reps, batch_size):
            x, lens = pad([load_rep(reps.paths[i]) for i in idx])
            logp, olens = model(x.to(device), lens.to(device))
            yield idx, logp.cpu(), olens.cpu()
    finally:
        model.train(was_training)
