"""A torch re-implementation of pydrobert-speech's STFT filter-bank front-end (``"stft"``).

It reproduces ``ShortTimeFourierTransformFrameComputer(**config).compute_full(signal)`` of
pydrobert-speech 0.3.0 for the options below, batched and device-agnostic:

- frame k covers ``signal[k * shift - pad_left : k * shift - pad_left + length]``, where
  pad_left is ``(length + 1) // 2 - 1`` for centred frames (frame k centred on sample
  k * shift), ``length // 2 - shift // 2`` with ``kaldi_shift``, and 0 for causal frames;
  samples outside the signal are its mirror image (numpy's "symmetric" padding);
- there are ``(S + shift // 2) // shift`` frames, none when ``S < length // 2 + 1``;
- the optional energy (coefficient 0) is ``sqrt(mean(frame ** 2))`` of the unwindowed
  frame (the mean itself with ``use_power``);
- each filter's value is ``2 * sum_k |X[k]| h[k]`` over the half spectrum of the windowed,
  zero-padded frame (``|X[k] h[k]| ** 2`` with ``use_power``);
- with ``use_log``, values are ``log(max(value, 1e-5))``.

It computes in float64, as pydrobert does, and returns the input's dtype; float32 output then
agrees with pydrobert to float32 rounding (about 5e-7 on the log values).
"""

from __future__ import annotations

from typing import Any

import torch

from scpc.frontend import filters
from scpc.frontend.base import FramedFrontend
from scpc.frontend.config import SAMPLE_RATE, check_input_scale, stft_settings
from scpc.masks import frame_mask

LOG_FLOOR = 1e-5  # pydrobert.speech.config.LOG_FLOOR_VALUE


class StftFrontend(FramedFrontend):
    """pydrobert-speech's ``stft`` frame computer with a linear filter bank, in torch."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        st = stft_settings(config)
        self.input_scale = check_input_scale(config)
        self.frame_length = st.frame_length
        self.frame_shift = st.frame_shift
        self.pad_left = st.pad_left
        self.dft_size = st.dft_size
        self.include_energy = st.include_energy
        self.use_log = st.use_log
        self.use_power = st.use_power
        self.feat_size = st.num_filts + int(st.include_energy)
        weights = filters.bank_matrix(
            st.bank,
            num_filts=st.num_filts,
            low_hz=st.low_hz,
            high_hz=st.high_hz,
            rate=SAMPLE_RATE,
            dft_size=st.dft_size,
        )
        if st.use_power:
            weights = weights**2
        # not persistent: rebuilt from the config, so state dicts stay free of them
        window = filters.window(st.window, st.frame_length)
        self.register_buffer("window", torch.from_numpy(window), persistent=False)
        self.register_buffer("weights", torch.from_numpy(weights), persistent=False)

    def num_frames(self, num_samples):
        shift = self.frame_shift
        if isinstance(num_samples, torch.Tensor):
            frames = torch.div(num_samples + shift // 2, shift, rounding_mode="floor")
            return torch.where(num_samples < self.frame_length // 2 + 1, 0, frames)
        if num_samples < self.frame_length // 2 + 1:
            return 0
        return (num_samples + shift // 2) // shift

    def _frames(self, wav: torch.Tensor, lens: torch.Tensor, num: int) -> torch.Tensor:
        """(N, num, frame_length) frames (a strided view), each signal mirrored past its ends."""
        # positions of the padded signal that the first num frames cover
        span = (num - 1) * self.frame_shift + self.frame_length
        pos = torch.arange(span, device=wav.device)[None] - self.pad_left  # (1, span)
        size = lens.clamp(min=1)[:, None]  # (N, 1); empty signals give no frames anyway
        # numpy's "symmetric" padding is the signal extended with period 2S by mirror images
        pos = torch.remainder(pos, 2 * size)
        pos = torch.where(pos >= size, 2 * size - 1 - pos, pos)
        padded = torch.gather(wav, 1, pos)  # (N, span)
        return padded.unfold(1, self.frame_length, self.frame_shift)

    def features(self, wav, lens, out_lens, num) -> torch.Tensor:
        # float64 inside, as pydrobert: a float32 FFT loses the bins far below a frame's
        # loudest (log errors near 1e-3); MPS has no float64
        work = torch.float32 if wav.device.type == "mps" else torch.float64
        frames = self._frames(wav.to(work) * self.input_scale, lens, num)
        bins = torch.fft.rfft(frames * self.window.to(work), n=self.dft_size)
        # |X|^2 as re^2 + im^2: complex abs (hypot) is the front-end's slowest step
        spect = torch.addcmul(bins.real.square(), bins.imag, bins.imag)
        if not self.use_power:
            spect = spect.sqrt()
        feats = 2 * spect @ self.weights.to(work)
        if self.include_energy:
            energy = frames.square().mean(-1, keepdim=True)
            if not self.use_power:
                energy = energy.sqrt()
            feats = torch.cat([energy, feats], -1)
        if self.use_log:
            feats = feats.clamp(min=LOG_FLOOR).log()
        valid = frame_mask(out_lens.to(wav.device), num)
        return feats.masked_fill(~valid[..., None], 0.0)
