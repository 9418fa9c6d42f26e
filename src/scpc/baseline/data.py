"""Representation sets with transcripts, MVN statistics, the short subset and batches.

A set is a directory of ``<utt>.pt`` float32 ``(T, C)`` representations (``scpc-a2r``), or a
Kaldi table of them (a ``feats.scp``, given as the file or as a directory holding one:
``scpc-a2r --format kaldi``'s, or Kaldi's own features), and a Kaldi data dir whose ``text``
names the utterances and their words. Every utterance of ``text`` must have a
representation; extra representations are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from scpc.data.datadir import DataDir, read_table
from scpc.errors import ScpcError
from scpc.io import load_torch
from scpc.kaldi_tables import KaldiMatrix, is_scp, num_frames, read_scp
from scpc.progress import progress_bar

STATS_FORMAT = "scpc-baseline-mvn-1"
MIN_STD = 1e-5  # a constant channel is centred, not blown up


Source = Path | KaldiMatrix  # where one utterance's representation is


def load_rep(path: str | os.PathLike | KaldiMatrix) -> torch.Tensor:
    """One ``(T, C)`` float32 representation (a ``.pt`` file or a Kaldi table's entry), checked."""
    try:
        if isinstance(path, KaldiMatrix):
            x = torch.from_numpy(path.read())
        else:
            x = torch.load(path, map_location="cpu", weights_only=True)
    except ScpcError:
        raise
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file") from None
    except Exception as e:
        raise ScpcError(f"{path}: unreadable representation ({type(e).__name__})") from None
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ScpcError(f"{path}: expected a non-empty (frames, channels) tensor, got {shape}")
    if not torch.isfinite(x).all():
        raise ScpcError(f"{path}: representation holds NaN or infinity")
    return x.float()


@dataclass
class RepSet:
    """Utterances of a data dir's ``text`` with their representations (files or table
    entries) and their frame counts where known without reading them (a table's
    ``utt2num_frames``)."""

    name: str
    utts: list[str]
    paths: list[Source]
    texts: list[str]
    data_dir: Path
    frames: list[int] | None = None

    @classmethod
    def open(cls, reps_dir: str | os.PathLike, data_dir: str | os.PathLike) -> RepSet:
        reps_dir, data_dir = Path(reps_dir), Path(data_dir)
        table = read_table(data_dir / "text")
        if not table:
            raise ScpcError(f"{data_dir / 'text'}: no utterances")
        scp = reps_dir if is_scp(reps_dir) else reps_dir / "feats.scp"
        if not reps_dir.is_dir() and not is_scp(reps_dir):
            raise ScpcError(f"{reps_dir}: no such representation directory or feats.scp")
        sources: dict[str, Source]
        if is_scp(scp):
            sources = dict(read_scp(scp))
            where = str(scp)
        else:
            sources = {p.stem: p for p in reps_dir.glob("*.pt")}
            where = str(reps_dir)
        missing = [u for u in table if u not in sources]
        if missing:
            raise ScpcError(
                f"{where}: no representation of {len(missing)} of the {len(table)} "
                f"utterances of {data_dir / 'text'} (first: {missing[0]}); extract them with "
                "scpc-a2r"
            )
        utts = list(table)
        texts = [" ".join(table[u].split()) for u in utts]
        counts = num_frames(scp) if is_scp(scp) else None
        frames = [counts[u] for u in utts] if counts and all(u in counts for u in utts) else None
        return cls(data_dir.name, utts, [sources[u] for u in utts], texts, data_dir, frames)

    def size(self, i: int) -> int:
        """What inference batches are sorted by: frames, or a file's bytes (in proportion)."""
        if self.frames is not None:
            return self.frames[i]
        path = self.paths[i]
        return len(load_rep(path)) if isinstance(path, KaldiMatrix) else path.stat().st_size

    def __len__(self) -> int:
        return len(self.utts)

    def subset(self, keep: Sequence[str]) -> RepSet:
        want = set(keep)
        idx = [i for i, u in enumerate(self.utts) if u in want]
        return RepSet(
            self.name,
            [self.utts[i] for i in idx],
            [self.paths[i] for i in idx],
            [self.texts[i] for i in idx],
            self.data_dir,
            [self.frames[i] for i in idx] if self.frames is not None else None,
        )

    def seconds_per_frame(self, frames: Sequence[int]) -> float:
        """Audio seconds per representation frame: the set's duration (its data dir's
        utt2dur, utt2num_samples, or audio) over its ``frames`` (one count per utterance)."""
        d = DataDir(self.data_dir)
        if not (d.has("utt2dur") or d.has("utt2num_samples") or d.has("wav.scp")):
            raise ScpcError(
                f"{self.data_dir}: train.batch_seconds needs the utterances' durations "
                "(utt2dur, utt2num_samples or wav.scp)"
            )
        durations = d.durations()
        missing = [u for u in self.utts if u not in durations]
        if missing:
            raise ScpcError(f"{self.data_dir}: no duration of {missing[0]}")
        return sum(durations[u] for u in self.utts) / max(sum(frames), 1)


# ---------------------------------------------------------------------------- MVN


def compute_stats(reps: RepSet) -> dict:
    """Per-channel mean and standard deviation over every frame of ``reps`` (float64
    accumulation), and each utterance's frame count (the short phase picks by it)."""
    total = sq = None
    frames = 0
    lengths: dict[str, int] = {}
    for utt, path in progress_bar(list(zip(reps.utts, reps.paths)), desc="mvn", unit="utt"):
        x = load_rep(path).double()
        if total is None:
            total, sq = (
                torch.zeros(x.shape[1], dtype=torch.float64),
                torch.zeros(x.shape[1], dtype=torch.float64),
            )
        elif x.shape[1] != total.numel():
            raise ScpcError(f"{path}: {x.shape[1]} channels, others have {total.numel()}")
        total += x.sum(0)
        sq += x.square().sum(0)
        frames += x.shape[0]
        lengths[utt] = x.shape[0]
    assert total is not None and sq is not None
    mean = total / frames
    var = (sq / frames - mean.square()).clamp(min=0.0)
    return {
        "format": STATS_FORMAT,
        "mean": mean.float(),
        "std": var.sqrt().clamp(min=MIN_STD).float(),
        "frames": frames,
        "set": reps.name,
        "lengths": lengths,
    }


def load_stats(path: str | os.PathLike) -> dict:
    return load_torch(
        path, STATS_FORMAT, "scpc-baseline MVN statistics", hint="scpc-baseline stats"
    )


def shortest(lengths: dict[str, int], n: int | None) -> list[str]:
    """The ``n`` utterances with the fewest frames (ties by id); all of them for None."""
    ranked = sorted(lengths, key=lambda u: (lengths[u], u))
    return ranked if n is None else ranked[:n]


# ---------------------------------------------------------------------------- batches


def pad(xs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T_max, C) zero-padded, and the (B,) lengths."""
    return pad_sequence(list(xs), batch_first=True), torch.tensor([len(x) for x in xs])


class TrainItems(torch.utils.data.Dataset):
    """(representation, target ids) pairs; indexed by position in the set."""

    def __init__(self, reps: RepSet, targets: list[list[int]]) -> None:
        self.reps, self.targets = reps, targets

    def __len__(self) -> int:
        return len(self.reps)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[int]]:
        return load_rep(self.reps.paths[i]), self.targets[i]


def collate(items: list[tuple[torch.Tensor, list[int]]]):
    x, lens = pad([x for x, _ in items])
    return x, lens, [t for _, t in items]


def eval_batches(reps: RepSet, batch_size: int) -> list[list[int]]:
    """Batches of indices for inference, by file size (frames) so that padding is small."""
    order = sorted(range(len(reps)), key=lambda i: (reps.size(i), i))
    return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]
