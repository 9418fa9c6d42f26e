"""Audio, lengths and the frozen-upstream cache of the SUPERB trainer.

A frozen upstream gives the same hidden states for an utterance at every step, so they are
computed once (in length-sorted batches) and kept: in memory up to a budget, then on disk
(``<cache_dir>/<key>/<uttid>.pt``, float16, each written atomically). The cache key hashes
the upstream checkpoint's bytes and the layers kept, so probes that share an upstream share
a disk cache (PR and the phone probes on the same data), and a new checkpoint never reads
stale files; each file also records which audio it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from scpc import audio
from scpc.data.alignment import read_alignments, read_phone_table
from scpc.data.datadir import DataDir, audio_entries, validate
from scpc.downstream.task import Example
from scpc.downstream.upstream import TableUpstream, Upstream
from scpc.errors import ScpcError
from scpc.io import atomic_write, save_torch
from scpc.models.inference import plan_batches
from scpc.progress import progress_bar
from scpc.train.seeds import mix

CACHE_FORMAT = "scpc-superb-cache-1"
READ_AHEAD = 64  # utterances read and sorted by length together when filling the cache


def read_wav(example: Example) -> np.ndarray:
    return audio.read_audio(example.audio, start=example.start, end=example.end)


def source_key(example: Example) -> str:
    return f"{example.audio}|{example.start}|{example.end}"


def data_examples(path: str | os.PathLike, text: bool = False) -> list[Example]:
    """One example per utterance of a data dir (validated), cut by segments when present."""
    validate(path, text=text)
    return [
        Example(utt, entry, start, None if end is None or end < 0 else end)
        for utt, entry, start, end in audio_entries(DataDir(path))
    ]


def aligned_examples(data: dict[str, str]) -> tuple[dict[str, int], dict[str, list[Example]]]:
    """The training dir's phone table, and every split's examples with their frame alignment
    (``ali.txt``, one phone id per 10 ms) as ``target``. Every split must share the training
    dir's ``phones.txt`` and align every utterance."""
    train = DataDir(data["train"])
    if not train.has("ali.txt"):
        raise ScpcError(f"{train.file('ali.txt')}: no such file (the task needs frame alignments)")
    table = read_phone_table(train.file("phones.txt"))
    out = {}
    for split, path in data.items():
        d = DataDir(path)
        if read_phone_table(d.file("phones.txt")) != table:
            raise ScpcError(f"{d.file('phones.txt')}: differs from {train.file('phones.txt')}")
        alis = dict(read_alignments(d.file("ali.txt")))
        examples = data_examples(path)
        missing = [ex.uttid for ex in examples if ex.uttid not in alis]
        if missing:
            raise ScpcError(
                f"{d.file('ali.txt')}: no alignment of {len(missing)} utterances "
                f"(first: {missing[0]})"
            )
        for ex in examples:
            ex.target = alis[ex.uttid]
        out[split] = examples
    return table, out


def durations(examples: Sequence[Example], data_dirs: Sequence[str | os.PathLike]) -> list[float]:
    """Seconds of audio of each example: segment times, the data dirs' utt2dur, or headers."""
    table: dict[str, float] = {}
    for d in data_dirs:
        if DataDir(d).has("utt2dur"):
            table.update(DataDir(d).durations())
    out = []
    for ex in examples:
        if ex.end is not None and ex.end >= 0:
            out.append(ex.end - ex.start)
        elif ex.uttid in table:
            out.append(table[ex.uttid] - ex.start)
        else:
            out.append(audio.duration(ex.audio) - ex.start)
    return out


def eval_batches(lengths: Sequence[float], batch_size: int) -> list[list[int]]:
    """Indices sorted by length (longest first) in batches of ``batch_size``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def upstream_key(checkpoint_id: str, layers: Sequence[int]) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, "upstream": checkpoint_id, "layers": list(layers)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FeatureCache:
    """An example's (L, T, C) hidden states from a frozen upstream (float16 where they fit).

    ``mode``: ``memory`` (everything in memory), ``disk`` (everything on disk) or ``auto``
    (memory up to ``memory_bytes``, disk for the rest).
    """

    def __init__(
        self, mode: str, directory: str | os.PathLike | None, key: str, memory_bytes: float
    ) -> None:
        if mode not in ("memory", "disk", "auto"):
            raise ScpcError(f"train.cache must be auto, memory, disk or none, not {mode!r}")
        if mode != "memory" and directory is None:
            raise ScpcError("train.cache_dir is needed for a disk cache")
        self.mode, self.memory_bytes = mode, memory_bytes
        self.dir = Path(directory) / key if directory is not None else None
        self.memory: dict[str, torch.Tensor] = {}
        self.used = 0
        if self.dir is not None and mode != "memory":
            self.dir.mkdir(parents=True, exist_ok=True)
            info = self.dir / "info.json"
            if not info.is_file():
                with atomic_write(info) as f:
                    json.dump({"format": CACHE_FORMAT, "key": key}, f)

    def _file(self, uttid: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{uttid}.pt"

    def get(self, example: Example) -> torch.Tensor | None:
        hit = self.memory.get(source_key(example))
        if hit is not None or self.mode == "memory":
            return hit
        path = self._file(example.uttid)
        if not path.is_file():
            return None
        try:
            item = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a foreign or damaged file: recompute it
            return None
        if item.get("source") != source_key(example):
            return None
        return item["hidden"]

    def put(self, example: Example, hidden: torch.Tensor) -> None:
        # float16 halves the memory; values past its range (unnormalised upstreams) stay float32
        finite = hidden.abs().max() < torch.finfo(torch.float16).max if hidden.numel() else True
        hidden = hidden.to(torch.float16 if finite else torch.float32).contiguous().clone()
        size = hidden.numel() * hidden.element_size()
        if self.mode == "memory" or (self.mode == "auto" and self.used + size <= self.memory_bytes):
            self.memory[source_key(example)] = hidden
            self.used += size
            return
        save_torch({"source": source_key(example), "hidden": hidden}, self._file(example.uttid))


class TableFeatures:
    """A :class:`FeatureCache` stand-in that reads a :class:`TableUpstream`'s matrices from
    their archives (Kaldi's tables are already on disk; nothing is copied)."""

    def __init__(self, upstream: TableUpstream) -> None:
        self.upstream = upstream

    def get(self, example: Example) -> torch.Tensor:
        return self.upstream.features(example.uttid)

    def put(self, example: Example, hidden: torch.Tensor) -> None:  # pragma: no cover
        raise AssertionError("precomputed features are never recomputed")


def fill_cache(
    cache: FeatureCache,
    upstream: Upstream,
    examples: Sequence[Example],
    device: torch.device,
    batch_samples: int,
    desc: str,
    quiet: bool,
) -> None:
    """Run the upstream once over every example missing from the cache."""
    todo = [ex for ex in examples if cache.get(ex) is None]
    if not todo:
        return
    bar = progress_bar(total=len(todo), desc=desc, unit="utt", disable=quiet)
    with bar:
        for window in _windows(todo, READ_AHEAD):
            wavs = [read_wav(ex) for ex in window]
            for batch in plan_batches([len(w) for w in wavs], batch_samples):
                hidden, frames = upstream.encode([wavs[i] for i in batch], device)
                hidden = hidden.float()
                for j, i in enumerate(batch):
                    h = hidden[j, :, : int(frames[j])]
                    if not torch.isfinite(h).all():
                        raise ScpcError(f"{window[i].audio}: the upstream gives NaN/inf")
                    cache.put(window[i], h.cpu())
                bar.update(len(batch))


def _windows(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def pad_hidden(hidden: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, T_i, C) tensors to (B, L, T, C) float32, zero-padded, and (B,) frames."""
    lens = torch.tensor([h.shape[1] for h in hidden], dtype=torch.long)
    first = hidden[0]
    out = torch.zeros(len(hidden), first.shape[0], int(lens.max()), first.shape[2])
    for i, h in enumerate(hidden):
        out[i, :, : h.shape[1]] = h.float()
    return out, lens


class AudioDataset(torch.utils.data.Dataset):
    """Waveforms of examples for the live upstream (fine-tuning, or a task that augments),
    read (and augmented) in DataLoader workers. Example i's augmentation draws from a
    generator seeded by (seed, epoch, i), so it does not depend on workers or resumption."""

    def __init__(
        self, examples: Sequence[Example], task=None, seed: int = 0, epoch: int = 0
    ) -> None:
        self.examples, self.task, self.seed, self.epoch = examples, task, seed, epoch

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        ex = self.examples[i]
        wav = torch.from_numpy(read_wav(ex))
        if self.task is not None:
            g = torch.Generator().manual_seed(mix(self.seed, "augment", self.epoch, i))
            wav = self.task.augment(wav, ex, g)
        return i, wav


def collate(items: list[tuple[int, torch.Tensor]]) -> tuple[list[int], list[torch.Tensor]]:
    return [i for i, _ in items], [w for _, w in items]
