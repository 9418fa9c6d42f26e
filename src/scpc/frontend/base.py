"""The front-end interface: batched audio in [-1, 1] at 16 kHz to (N, T, F) features."""

from __future__ import annotations

from typing import Any, overload

import torch
from torch import nn

from scpc.errors import ScpcError
from scpc.frontend.config import check_input_scale, kaldi_settings
from scpc.masks import frame_mask, utterance_cmvn

WAVE_NORM_EPS = 1e-7  # raw-norm: the waveform standardised per utterance


class Frontend(nn.Module):
    """Audio to features; ``config`` is the JSON it was built from, kept verbatim.

    Subclasses set ``feat_size`` (F) and ``frame_shift`` (input samples per output frame),
    and implement :meth:`num_frames` and :meth:`forward`.
    """

    config: dict[str, Any]
    feat_size: int
    frame_shift: int

    @overload
    def num_frames(self, num_samples: int) -> int: ...
    @overload
    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor: ...
    def num_frames(self, num_samples):
        """The exact number of output frames for ``num_samples`` input samples."""
        raise NotImplementedError

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S) zero-padded audio and (N,) sample counts to (N, T, F) features and (N,) frames.

        Frames past an utterance's length are zero, and each utterance's frames equal what it
        gives alone: padding never leaks in.
        """
        raise NotImplementedError


class FramedFrontend(Frontend):
    """A front-end of frames: checks the batch, counts the frames and answers an empty batch;
    subclasses compute ``features`` (N, num, F) of batches with ``num`` > 0 frames."""

    def features(
        self, wav: torch.Tensor, lens: torch.Tensor, out_lens: torch.Tensor, num: int
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_batch(wav, lens)
        lens = lens.to(device=wav.device, dtype=torch.long)
        out_lens = self.num_frames(lens)
        num = int(out_lens.max()) if lens.numel() else 0
        if num == 0:
            return wav.new_zeros(wav.shape[0], 0, self.feat_size), out_lens
        return self.features(wav, lens, out_lens, num).to(wav.dtype), out_lens


class KaldiFeatures(Frontend):
    """Features imported from a Kaldi table (fMLLR, MFCC, ... by Kaldi's own programs): their
    size and frame shift are known, so a feature dir of them trains a model, but they cannot
    be computed from audio; a model trained on them reads imported features only."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.feat_size, self.frame_shift = kaldi_settings(config)

    def num_frames(self, num_samples):
        return num_samples // self.frame_shift

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ScpcError(
            "front-end 'kaldi': these features were imported from a Kaldi table "
            "(steps/make_feats.sh --import-scp) and cannot be computed from audio"
        )


def check_batch(wav: torch.Tensor, lens: torch.Tensor) -> None:
    if wav.dim() != 2:
        raise ScpcError(f"front-end input must be (N, S) audio, got shape {tuple(wav.shape)}")
    if lens.dim() != 1 or lens.numel() != wav.shape[0]:
        raise ScpcError(
            f"front-end lengths must be ({wav.shape[0]},), got shape {tuple(lens.shape)}"
        )
    if lens.numel() and (int(lens.min()) < 0 or int(lens.max()) > wav.shape[1]):
        raise ScpcError(f"front-end lengths must lie in [0, {wav.shape[1]}]")


class RawFrontend(Frontend):
    """Each sample is a one-dimensional frame. With ``"normalize": true`` each utterance is
    scaled to zero mean and unit variance over its real samples (as wav2vec 2.0 does): a
    waveform in [-1, 1] is otherwise so small next to the first convolution's bias that a
    normalised conv encoder starts from nearly constant outputs and learns very slowly."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.normalize = bool(config.get("normalize", False))
        # fairseq's F.layer_norm(wav, wav.shape) is this with eps 1e-5
        self.normalize_eps = float(config.get("normalize_eps", WAVE_NORM_EPS))
        self.input_scale = check_input_scale(config)
        self.feat_size = 1
        self.frame_shift = 1

    def num_frames(self, num_samples):
        return num_samples

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_batch(wav, lens)
        if wav.shape[0] != 1 or int(lens[0]) != wav.shape[1]:  # padding to zero
            mask = frame_mask(lens.to(wav.device), wav.shape[1])
            wav = wav.masked_fill(~mask, 0.0)
        if self.input_scale != 1.0:
            wav = wav * self.input_scale
        wav = wav.unsqueeze(-1)
        if self.normalize:
            wav = utterance_cmvn(wav, lens, eps=self.normalize_eps)
        return wav, lens
