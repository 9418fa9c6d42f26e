"""What the torch.stft-based front-ends share (s3prl's and NeMo's features): centred frames
with reflect padding, computed per utterance so that padding never leaks in. Both compute in
float64, so that the float32 original's own rounding is the only difference."""

from __future__ import annotations

import torch


def padded_window(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """A window shorter than the FFT centred in it, as torch.stft places it."""
    left = (n_fft - len(window)) // 2
    return torch.nn.functional.pad(window, (left, n_fft - len(window) - left))


def centred_frames(x: torch.Tensor, lens: torch.Tensor, num: int, n_fft: int, shift: int):
    """(N, num, n_fft) frames centred at multiples of ``shift``, each signal reflected at its
    own ends (no edge repeat: torch.stft's ``center=True, pad_mode="reflect"``)."""
    pos = torch.arange((num - 1) * shift + n_fft, device=x.device) - n_fft // 2
    size = lens.clamp(min=2)[:, None]
    pos = torch.remainder(pos[None].abs(), 2 * (size - 1))
    pos = torch.where(pos >= size, 2 * (size - 1) - pos, pos)
    return torch.gather(x, 1, pos).unfold(1, n_fft, shift)
