"""Cutting padded batches into training chunks (``training.chunking``).

Policies: ``none`` keeps whole utterances; ``fixed`` cuts windows every ``lobe_size + 1``
frames, of ``lobe_size + 1`` frames (causal, future) or ``2 * lobe_size + 1`` (symmetric,
centred on the anchor, so neighbouring windows overlap); ``ali`` takes each aligned segment
(a run of one label) widened by ``lobe_size`` frames to the left (causal), right (future)
or both (symmetric). ``pad_mode`` "valid" drops windows that cross an utterance's ends;
"constant" and "replicate" pad them. When there are more than ``max_chunks`` chunks, a
random subset is kept (seeded by the caller's generator).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence


@dataclass(frozen=True)
class Chunking:
    policy: str = "fixed"
    window_type: str = "causal"
    lobe_size: int = 20479
    pad_mode: str = "valid"
    pad_constant: float = 0.0
    max_chunks: int | None = 8

    @property
    def window(self) -> int:
        return 2 * self.lobe_size + 1 if self.window_type == "symmetric" else self.lobe_size + 1

    def slices(self, length: int, ali: torch.Tensor | None = None) -> list[tuple[int, int]]:
        """[start, end) windows of one utterance; may reach outside [0, length)."""
        lobe = self.lobe_size
        if self.policy == "fixed":
            shift, out = lobe + 1, []
            for anchor in range(0, length, shift):
                if self.window_type == "symmetric":
                    lo, hi = anchor - lobe, anchor + lobe + 1
                else:
                    lo, hi = anchor, anchor + shift
                out.append((lo, hi))
        else:  # ali: runs of equal labels
            assert ali is not None
            ali = ali[:length]
            change = torch.nonzero(ali[1:] != ali[:-1]).squeeze(1) + 1
            bounds = [0, *change.tolist(), length]
            left = lobe if self.window_type in ("causal", "symmetric") else 0
            right = lobe if self.window_type in ("future", "symmetric") else 0
            out = [(s - left, e + right) for s, e in zip(bounds, bounds[1:])]
        if self.pad_mode == "valid":
            out = [(lo, hi) for lo, hi in out if lo >= 0 and hi <= length]
        return out

    def __call__(
        self,
        feats: torch.Tensor,
        lens: torch.Tensor,
        alis: list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        min_frames: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chunks (M, W, F), their lengths (M,) and source utterance indices (M,)."""
        if self.policy == "none":
            keep = (lens >= min_frames).nonzero().squeeze(1)
            return feats[keep, : int(lens[keep].max()) if len(keep) else 0], lens[keep], keep
        pieces, sources = [], []
        for n, length in enumerate(lens.tolist()):
            for lo, hi in self.slices(length, alis[n] if alis is not None else None):
                pieces.append((n, lo, hi))
        pieces = [p for p in pieces if min(p[2], int(lens[p[0]])) - max(p[1], 0) >= 1]
        if self.max_chunks is not None and len(pieces) > self.max_chunks:
            pick = torch.randperm(len(pieces), generator=generator)[: self.max_chunks]
            pieces = [pieces[i] for i in sorted(pick.tolist())]
        chunks, chunk_lens = [], []
        for n, lo, hi in pieces:
            x = feats[n, : int(lens[n])]
            inner = x[max(lo, 0) : min(hi, len(x))]
            before, after = max(0, -lo), max(0, hi - len(x))
            if before or after:
                if self.pad_mode == "replicate":
                    inner = torch.cat(
                        [inner[:1].expand(before, -1), inner, inner[-1:].expand(after, -1)]
                    )
                else:
                    fill = self.pad_constant
                    inner = torch.cat(
                        [
                            inner.new_full((before, x.shape[1]), fill),
                            inner,
                            inner.new_full((after, x.shape[1]), fill),
                        ]
                    )
            chunks.append(inner)
            chunk_lens.append(len(inner))
            sources.append(n)
        chunk_lens_t = torch.tensor(chunk_lens, dtype=torch.long)
        keep = (chunk_lens_t >= min_frames).nonzero().squeeze(1).tolist()
        if not keep:
            return feats[:0, :0], chunk_lens_t[:0], torch.zeros(0, dtype=torch.long)
        return (
            pad_sequence([chunks[i] for i in keep], batch_first=True),
            chunk_lens_t[keep],
            torch.tensor([sources[i] for i in keep], dtype=torch.long),
        )
