"""Training inputs: a feature dir, a data dir or local shards as a dataset, and its batches
read ahead.

``open_dataset`` takes any of them (a feature dir has ``feat/``, a data dir ``wav.scp``, a
shard dir ``shards.list``: read by index);
``read_batches`` yields the items of given index batches, in order, from DataLoader workers
(each computing whole batches; pinned memory for a GPU) or in this process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from scpc.data.audiodir_dataset import AudioDirDataset
from scpc.data.featdir_dataset import FeatDirDataset
from scpc.data.shard_index_dataset import ShardIndexDataset
from scpc.data.shards import is_shard_source
from scpc.errors import ScpcError

PREFETCH_BATCHES = 4  # per worker


def open_dataset(
    root: str | os.PathLike, frontend_config: dict[str, Any] | None, with_ali: bool = False
) -> FeatDirDataset | AudioDirDataset | ShardIndexDataset:
    root = Path(root)
    if (root / "feat").is_dir():
        return FeatDirDataset(root, with_ali)
    audio = (root / "wav.scp").is_file() or is_shard_source(root)
    if audio and frontend_config is None:
        raise ScpcError(f"{root}: audio input needs the model's front-end (a frozen model.yaml)")
    if (root / "wav.scp").is_file():
        return AudioDirDataset(root, frontend_config, with_ali)
    if is_shard_source(root):
        return ShardIndexDataset(root, frontend_config, with_ali)
    raise ScpcError(
        f"{root}: neither a data dir (wav.scp), a feature dir (feat/) nor shards (shards.list)"
    )


def _items(batch: list) -> list:
    return batch


def read_batches(
    ds: torch.utils.data.Dataset,
    batches: Sequence[list[int]],
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[list]:
    """The items of each index batch, in order."""
    if num_workers == 0:
        for batch in batches:
            yield [ds[i] for i in batch]
        return
    loader = torch.utils.data.DataLoader(
        ds,
        batch_sampler=list(batches),
        num_workers=num_workers,
        collate_fn=_items,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES,
    )
    yield from loader
