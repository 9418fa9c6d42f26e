"""Which utterances form each training batch of an epoch, identically on every process.

An epoch's plan is a function of (seed, epoch) only, so a resumed run sees the same batches
in the same order, and data-parallel processes agree without talking. Utterances are
shuffled, then sorted by length inside pools of many batches (little padding, still random),
then the batch order is shuffled. A global batch is ``batch_size * world_size`` utterances;
process r takes the r-th slice. The remainder that does not fill a global batch is dropped
(different utterances each epoch).

With a ``batch_seconds`` budget instead (:func:`bucketed_plan`), batches are as many
utterances of similar length as fit the budget of padded audio (the longest times the count):
utterances are shuffled, sorted by length inside large pools (duration buckets), cut greedily
into batches, and the batch order is shuffled. The budget is per step over all processes, so
the global batches do not depend on the number of processes; each process takes a contiguous
share (:func:`rank_part`, sizes differing by at most one).
"""

from __future__ import annotations

import torch

POOL_BATCHES = 50  # batches per length-sorting pool
BUCKET_POOL = 20_000  # utterances per length-sorting pool of the bucketed plan


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


def budget_batches(order: list[int], lengths: list[int], budget: float) -> list[list[int]]:
    """``order`` (sorted by length) cut greedily into batches of at most ``budget`` padded
    frames (the longest times the count); a longer utterance is a batch of its own."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        top = max(longest, lengths[i])
        if current and top * (len(current) + 1) > budget:
            batches.append(current)
            current, top = [], lengths[i]
        current.append(i)
        longest = top
    if current:
        batches.append(current)
    return batches


def bucketed_plan(
    lengths: list[int],
    budget_frames: float,
    seed: int,
    epoch: int,
    shuffle: bool = True,
) -> list[list[int]]:
    """Global batches of one epoch within ``budget_frames`` padded frames each."""
    n = len(lengths)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist() if shuffle else list(range(n))
    batches: list[list[int]] = []
    for start in range(0, n, BUCKET_POOL):
        pool = sorted(order[start : start + BUCKET_POOL], key=lambda i: lengths[i])
        batches.extend(budget_batches(pool, lengths, budget_frames))
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
    return batches


def padding_ratio(batches: list[list[int]], lengths: list[int]) -> float:
    """Frames computed (each batch padded to its longest) over real frames."""
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    real = sum(lengths[i] for b in batches for i in b)
    return padded / max(real, 1)


def rank_part(batch: list[int], rank: int, world_size: int) -> list[int]:
    """Process ``rank``'s contiguous share of a global batch (sizes differ by at most one)."""
    start = rank_offset(len(batch), rank, world_size)
    return batch[start : rank_offset(len(batch), rank + 1, world_size)]


def rank_offset(n: int, rank: int, world_size: int) -> int:
    """Where process ``rank``'s share of a global batch of ``n`` starts."""
    per, extra = divmod(n, world_size)
    return rank * per + min(rank, extra)
