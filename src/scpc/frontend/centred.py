"""What the torch.stft-based front-ends share (s3prl's and NeMo's features): centred frames
with reflect padding, computed per utterance so that padding never leaks in."""

from __future__ import annotations

import torch

from scpc.frontend.base import Frontend, check_batch


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


class CentredStftFrontend(Frontend):
    """Checks the batch and counts frames; subclasses compute ``features`` of the utterances
    that have any (``num`` frames, float64 inside so that the float32 original's own
    rounding is the only difference)."""

    n_fft: int

    def features(self, wav, lens, out_lens, num) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, wav: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_batch(wav, lens)
        lens = lens.to(device=wav.device, dtype=torch.long)
        out_lens = self.num_frames(lens)
        num = int(out_lens.max()) if lens.numel() else 0
        if num == 0:
            return wav.new_zeros(wav.shape[0], 0, self.feat_size), out_lens
        return self.features(wav, lens, out_lens, num).to(wav.dtype), out_lens
