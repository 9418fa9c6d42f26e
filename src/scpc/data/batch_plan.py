"""Which utterances form each training batch of an epoch, identically on every process.

An epoch's plan is a function of (seed, epoch) only, so a resumed run sees the same batches
in the same order, and data-parallel processes agree without talking. Utterances are
shuffled, then sorted by length inside pools of many batches (little padding, still random),
then the batch order is shuffled. A global batch is ``batch_size * world_size`` utterances;
process r takes the r-th slice. The remainder that does not fill a global batch is dropped
(different utterances each epoch).
"""

from __future__ import annotations

import torch

POOL_BATCHES = 50  # batches per length-sorting pool


def epoch_plan(
    lengths: list[int],
    batch_size: int,
    world_size: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[list[int]]:
    """Global batches (lists of utterance indices) of one epoch."""
    n = len(lengths)
    size = batch_size * world_size
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist() if shuffle else list(range(n))
    pool = size * POOL_BATCHES
    batches: list[list[int]] = []
    for start in range(0, n - n % size, pool):
        chunk = order[start : min(start + pool, n - n % size)]
        chunk.sort(key=lambda i: lengths[i])
        batches.extend(chunk[j : j + size] for j in range(0, len(chunk), size))
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    return batches


def rank_slice(batch: list[int], rank: int, world_size: int) -> list[int]:
    per = len(batch) // world_size
    return batch[rank * per : (rank + 1) * per]
