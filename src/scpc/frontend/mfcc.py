"""MFCCs (``"mfcc"``): the orthonormal DCT-II of a log filter-bank front-end's output.

Config: ``{"name": "mfcc", "num_ceps": 13, "fbank": <an "stft" config with use_log true and
no energy>}``. Coefficient 0 is the scaled mean of the log energies. No liftering: ABX and
probes see the cepstra as computed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from scpc.frontend.base import Frontend
from scpc.frontend.stft import StftFrontend


def dct_matrix(num_filts: int, num_ceps: int) -> torch.Tensor:
    """(num_filts, num_ceps) orthonormal DCT-II basis: ceps = log_fbank @ matrix."""
    n = torch.arange(num_filts, dtype=torch.float64)[:, None]
    k = torch.arange(num_ceps, dtype=torch.float64)[None]
    m = torch.cos(math.pi / num_filts * (n + 0.5) * k) * math.sqrt(2.0 / num_filts)
    m[:, 0] /= math.sqrt(2.0)
    return m


class MfccFrontend(Frontend):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.fbank = StftFrontend(config["fbank"])
        self.feat_size = config["num_ceps"]
        self.frame_shift = self.fbank.frame_shift
        self.register_buffer(
            "dct", dct_matrix(self.fbank.feat_size, self.feat_size), persistent=False
        )

    def num_frames(self, num_samples):
        return self.fbank.num_frames(num_samples)

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frames = self.fbank(wav, lens)
        return (feats.double() @ self.dct).to(feats.dtype), frames  # padding stays zero
