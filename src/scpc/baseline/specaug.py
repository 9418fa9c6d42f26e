"""SpecAugment with pydrobert's length-relative limits, as the reference's full phase uses it.

Per utterance of ``T`` valid frames and ``C`` channels: a time warp of up to ``time_warp``
frames, then ``num_freq_mask`` channel masks of width uniform in ``[0, F]`` with
``F = floor(min(max_freq_mask or C, max_freq_mask_proportion * C))``, then
``floor(min(num_time_mask, num_time_mask_proportion * T))`` time masks of width uniform in
``[0, floor(min(max_time_mask, max_time_mask_proportion * T))]``. Masks set normalised
frames to zero (the training mean). The warp and the masking are the SUPERB probes'
(:mod:`scpc.nn.specaug`); only the limits differ. In eval mode it does nothing.
"""

from __future__ import annotations

import math

from scpc.nn.specaug import SpecAugment as FixedSpecAugment


class SpecAugment(FixedSpecAugment):
    def __init__(
        self,
        time_warp: int = 80,
        num_time_mask: int = 20,
        num_time_mask_proportion: float = 0.04,
        max_time_mask: int = 100,
        max_time_mask_proportion: float = 0.04,
        num_freq_mask: int = 2,
        max_freq_mask: int | None = None,
        max_freq_mask_proportion: float = 0.04,
    ) -> None:
        super().__init__(time_warp_window=time_warp, num_freq_mask=num_freq_mask)
        self.num_time_mask, self.num_time_mask_proportion = num_time_mask, num_time_mask_proportion
        self.max_time_mask, self.max_time_mask_proportion = max_time_mask, max_time_mask_proportion
        self.max_freq_mask, self.max_freq_mask_proportion = max_freq_mask, max_freq_mask_proportion

    def limits(self, t: int, c: int) -> tuple[int, tuple[int, int], int, tuple[int, int]]:
        n_time = math.floor(min(self.num_time_mask, self.num_time_mask_proportion * t))
        w_time = math.floor(min(self.max_time_mask, self.max_time_mask_proportion * t))
        w_freq = math.floor(min(self.max_freq_mask or c, self.max_freq_mask_proportion * c))
        return n_time, (0, w_time + 1), self.num_freq_mask, (0, w_freq + 1)


def from_config(cfg: dict) -> SpecAugment:
    return SpecAugment(**cfg)
