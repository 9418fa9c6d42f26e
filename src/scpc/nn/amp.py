"""Automatic mixed precision, one rule for every trainer and for extraction (scpc-a2r --amp).

``amp: off`` never autocasts; ``auto`` autocasts on a GPU only (bfloat16 where the GPU has
it, else float16); ``bf16`` or ``fp16`` autocast on whatever device the trainer runs on.
float16 needs a gradient scaler; bfloat16 and float32 do not.
"""

from __future__ import annotations

import contextlib

import torch

CHOICES = ("auto", "bf16", "fp16", "off")


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``setting`` on ``device``; None: no autocast."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context running under autocast to ``dtype`` (nothing when it is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, active only for float16 on a GPU (a no-op otherwise)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16 and device.type == "cuda")
