"""Sharded corpora for clusters and object stores: a data dir packed into tar shards in the
WebDataset convention, and a deterministic, resumable stream over them.

A shard holds, per utterance, ``<key>.flac`` (the compressed audio: the original FLAC file's
bytes when it is one, else the cut or decoded audio encoded as 16-bit FLAC) and ``<key>.json``
(``id``, ``speaker``, ``num_samples``, and ``text`` and ``ali`` (10 ms labels) when the data
dir has them), one after the other, so ``webdataset.WebDataset`` and lhotse read them. The key
is the utterance id with dots replaced (WebDataset splits names at the first dot); ``id``
keeps it. The utterances are shuffled (seeded) before packing, so a shard mixes speakers.
``shards.list`` names the shards, one per line: a path, or a command whose output is the
shard, Kaldi-style (``aws s3 cp s3://bucket/shard-000000.tar - |``); ``shards.json``
indexes them (utterances and seconds per shard).

:class:`ShardStream` reads a shard list: every epoch the shard order is permuted (seeded by
epoch), and shard j goes to reader ``j % readers`` (a reader is one DataLoader worker of one
process: ``rank * workers + worker``), so readers are disjoint and together see every
utterance once per epoch. A seeded shuffle buffer mixes a reader's utterances; audio is decoded
and the front-end computed only for utterances that are delivered, so skipping the first n of
a reader (resuming from a recorded position) reads the tar bytes but decodes nothing.

Written with the standard library's tarfile rather than the webdataset package: a reader
here must be a pure function of (seed, epoch, reader) and skip to an exact position, which
webdataset's pipeline stages do not expose; the tests read our shards with webdataset.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scpc.audio import SAMPLE_RATE, is_pipe, read_audio
from scpc.data.alignment import read_alignments
from scpc.data.datadir import DataDir, audio_entries
from scpc.data.featdir import frame_labels
from scpc.data.num_samples import num_samples
from scpc.errors import ScpcError
from scpc.io import atomic_path, atomic_write

LIST = "shards.list"
INDEX = "shards.json"
MEMBERS = "shards.idx"  # per utterance: where its members lie, for random access
SHARD_SECONDS = 3600.0  # default audio per shard (about 60 MB of 16 kHz FLAC)
BUFFER = 1000  # default shuffle buffer, utterances per reader


def shard_key(uttid: str) -> str:
    return uttid.replace(".", "_")


def _flac_bytes(entry: str, start: float, end: float | None) -> bytes:
    """The utterance as FLAC: the file's own bytes when it is a whole FLAC file."""
    if not is_pipe(entry) and start == 0.0 and end is None and entry.lower().endswith(".flac"):
        if not os.path.isfile(entry):
            raise ScpcError(f"{entry}: no such audio file")
        return Path(entry).read_bytes()
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(
        buf, read_audio(entry, start=start, end=end), SAMPLE_RATE, format="FLAC", subtype="PCM_16"
    )
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard_seconds: float = SHARD_SECONDS,
    seed: int = 0,
) -> dict[str, Any]:
    """Pack ``data_dir`` into ``out_dir``/shard-NNNNNN.tar; returns the index. Shards already
    written (listed in a matching partial index) are kept, so an interrupted run resumes."""
    d, out = DataDir(Path(data_dir)), Path(out_dir)
    samples = num_samples(d.path)
    entries = {u: (e, s, t) for u, e, s, t in audio_entries(d)}
    utt2spk = dict(d.table("utt2spk"))
    text = dict(d.table("text")) if d.has("text") else {}
    alis = dict(read_alignments(d.file("ali.txt"))) if d.has("ali.txt") else {}
    g = torch.Generator().manual_seed(seed)
    utts = sorted(samples)
    order = [utts[i] for i in torch.randperm(len(utts), generator=g).tolist()]
    keys = [shard_key(u) for u in utts]
    if len(set(keys)) != len(keys):
        raise ScpcError(f"{d.path}: utterance ids collide once dots become underscores")
    groups: list[list[str]] = [[]]
    seconds = 0.0
    for utt in order:
        dur = samples[utt] / SAMPLE_RATE
        if groups[-1] and seconds + dur > shard_seconds:
            groups.append([])
            seconds = 0.0
        groups[-1].append(utt)
        seconds += dur
    out.mkdir(parents=True, exist_ok=True)
    plan = {"source": str(d.path.resolve()), "seed": seed, "shard_seconds": shard_seconds}
    progress = out / (INDEX + ".partial")
    done: list[dict[str, Any]] = []
    if progress.is_file():
        saved = json.loads(progress.read_text())
        if saved.get("plan") == plan:
            done = saved["shards"]
    for k, group in enumerate(groups):
        name = f"shard-{k:06d}.tar"
        if k < len(done) and (out / name).is_file():
            continue
        with (
            atomic_path(out / name) as tmp,
            tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for utt in group:
                meta: dict[str, Any] = {
                    "id": utt,
                    "speaker": utt2spk[utt],
                    "num_samples": samples[utt],
                }
                if utt in text:
                    meta["text"] = text[utt]
                if utt in alis:
                    meta["ali"] = alis[utt]
                key = shard_key(utt)
                _add(tar, f"{key}.flac", _flac_bytes(*entries[utt]))
                _add(tar, f"{key}.json", json.dumps(meta).encode())
        done = done[:k] + [
            {
                "name": name,
                "utterances": len(group),
                "seconds": sum(samples[u] for u in group) / SAMPLE_RATE,
            }
        ]
        with atomic_write(progress) as f:
            json.dump({"plan": plan, "shards": done}, f)
    index = {
        **plan,
        "speakers": sorted(set(utt2spk.values())),
        "utterances": len(utts),
        "seconds": sum(samples.values()) / SAMPLE_RATE,
        "shards": done,
    }
    write_member_index(out, [s["name"] for s in done], samples, utt2spk)
    with atomic_write(out / LIST) as f:
        f.writelines(f"{(out / s['name']).resolve()}\n" for s in done)
    with atomic_write(out / INDEX) as f:
        json.dump(index, f, indent=1)
    progress.unlink()
    return index


def write_member_index(
    out: Path, names: list[str], samples: dict[str, int], utt2spk: dict[str, str]
) -> None:
    """``shards.idx``: ``<id> <shard> <flac offset> <flac size> <json offset> <json size>
    <num_samples> <speaker>`` per utterance, sorted by id, read off the tar headers."""
    rows: dict[str, str] = {}
    for k, name in enumerate(names):
        where: dict[str, dict[str, tuple[int, int]]] = {}
        ids: dict[str, str] = {}
        with tarfile.open(out / name, mode="r:") as tar:
            for m in tar.getmembers():
                key, _, ext = os.path.basename(m.name).partition(".")
                where.setdefault(key, {})[ext] = (m.offset_data, m.size)
                if ext == "json":
                    ids[key] = json.loads(tar.extractfile(m).read())["id"]
        for key, parts in where.items():
            utt = ids[key]
            (fo, fs), (jo, js) = parts["flac"], parts["json"]
            rows[utt] = f"{utt} {k} {fo} {fs} {jo} {js} {samples[utt]} {utt2spk[utt]}\n"
    with atomic_write(out / MEMBERS) as f:
        f.writelines(rows[u] for u in sorted(rows))


def is_shard_source(path: str | os.PathLike) -> bool:
    """A shard dir (with shards.list) or a shard list file."""
    path = Path(path)
    return (path / LIST).is_file() or (path.is_file() and path.suffix == ".list")


class ShardSource:
    """What the trainer knows of a shard list before streaming it: its index (shards.json
    beside the list), when there is one."""

    def __init__(self, path: str | os.PathLike, frontend_config: dict[str, Any]) -> None:
        from scpc.frontend import frontend_from_config

        self.root = Path(path)
        self.shards = read_shard_list(self.root)
        index_file = (self.root if self.root.is_dir() else self.root.parent) / INDEX
        self.index = json.loads(index_file.read_text()) if index_file.is_file() else None
        self.frontend_config = frontend_config
        self.feat_size = frontend_from_config(frontend_config).feat_size
        self.utterances = self.index["utterances"] if self.index else 0
        self.seconds = self.index["seconds"] if self.index else 0.0
        speakers = self.index.get("speakers", []) if self.index else []
        self.utt2spk = {s: s for s in speakers}  # the trainer reads the speaker set from it

    def __len__(self) -> int:
        return self.utterances


def read_shard_list(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if path.is_dir():
        path = path / LIST
    if not path.is_file():
        raise ScpcError(f"{path}: no shard list")
    shards = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not shards:
        raise ScpcError(f"{path}: lists no shards")
    return shards


def _members(shard: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) of each utterance of a shard, in order."""
    proc = None
    try:
        if is_pipe(shard):
            proc = subprocess.Popen(shard.rstrip()[:-1], shell=True, stdout=subprocess.PIPE)
            tar = tarfile.open(fileobj=proc.stdout, mode="r|")
        else:
            if not os.path.isfile(shard):
                raise ScpcError(f"{shard}: no such shard")
            tar = tarfile.open(shard, mode="r|")
        key, parts = None, {}
        with tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = os.path.basename(member.name)
                k, _, ext = base.partition(".")
                if key is not None and k != key:
                    yield key, parts
                    parts = {}
                key = k
                f = tar.extractfile(member)
                parts[ext] = f.read() if f is not None else b""
        if key is not None:
            yield key, parts
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ScpcError(f"{shard}: corrupt or unreadable shard ({type(e).__name__}: {e})") from None
    finally:
        if proc is not None:
            proc.stdout.close()
            if proc.wait() != 0:
                raise ScpcError(f"{shard}: command failed (exit {proc.returncode})")


def decode_utterance(frontend, key: str, parts: dict[str, bytes], shard: str, with_ali: bool):
    """An utterance's members to (feats (T, F) float32, frame labels or None, metadata)."""
    import soundfile as sf

    if "flac" not in parts or "json" not in parts:
        raise ScpcError(f"{shard}: {key} lacks its .flac or .json member")
    try:
        meta = json.loads(parts["json"])
        wav, sr = sf.read(io.BytesIO(parts["flac"]), dtype="float32")
    except (ValueError, sf.LibsndfileError, RuntimeError) as e:
        raise ScpcError(f"{shard}: {key} is unreadable ({e})") from None
    if sr != SAMPLE_RATE or wav.ndim != 1:
        raise ScpcError(f"{shard}: {key} is not 16 kHz mono")
    x = torch.from_numpy(wav)
    with torch.no_grad():
        feats, lens = frontend(x[None], torch.tensor([len(x)]))
    num = int(lens[0])
    if num == 0:
        raise ScpcError(f"{shard}: {key}: {len(x)} samples are too short for the front-end")
    ali = None
    if with_ali:
        if "ali" not in meta:
            raise ScpcError(f"{shard}: {key} has no alignment")
        ali = frame_labels(meta["ali"], num, frontend.frame_shift)
    return feats[0, :num].float(), ali, meta


def reader_shards(num_shards: int, seed: int, epoch: int, reader: int, readers: int) -> list[int]:
    """Shard indices a reader streams in an epoch (disjoint across readers, all covered)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return [
        s
        for j, s in enumerate(torch.randperm(num_shards, generator=g).tolist())
        if j % readers == reader
    ]


class ShardStream(torch.utils.data.IterableDataset):
    """Utterances of a shard list with features computed on the fly.

    Yields ``(feats (T, F), ali or None, (reader, ordinal, id))``; ``set_epoch`` chooses the
    epoch and how many utterances each reader skips (``skip[reader]``: a recorded position).
    """

    def __init__(
        self,
        shards: list[str],
        frontend_config: dict[str, Any],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        buffer: int = BUFFER,
        with_ali: bool = False,
    ) -> None:
        from scpc.frontend import frontend_from_config

        self.shards, self.frontend_config = shards, frontend_config
        self.frontend = frontend_from_config(frontend_config)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.buffer, self.with_ali = buffer, with_ali
        self.epoch, self.skip = 0, {}

    def set_epoch(self, epoch: int, skip: dict[int, int] | None = None) -> None:
        self.epoch, self.skip = epoch, dict(skip or {})

    def _raw(self, reader: int, readers: int) -> Iterator[tuple[str, dict[str, bytes], str]]:
        for s in reader_shards(len(self.shards), self.seed, self.epoch, reader, readers):
            for key, parts in _members(self.shards[s]):
                yield key, parts, self.shards[s]

    def _shuffled(self, reader: int, readers: int):
        g = np.random.default_rng([self.seed, self.epoch, reader])
        pool: list = []
        for item in self._raw(reader, readers):
            if len(pool) < self.buffer:
                pool.append(item)
                continue
            j = int(g.integers(len(pool)))
            pool[j], item = item, pool[j]
            yield item
        while pool:
            yield pool.pop(int(g.integers(len(pool))))

    def _decode(self, key: str, parts: dict[str, bytes], shard: str):
        return decode_utterance(self.frontend, key, parts, shard, self.with_ali)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        reader = self.rank * workers + worker
        skip = self.skip.get(reader, 0)
        for ordinal, (key, parts, shard) in enumerate(
            self._shuffled(reader, self.world_size * workers)
        ):
            if ordinal < skip:
                continue
            feats, ali, meta = self._decode(key, parts, shard)
            yield feats, ali, (reader, ordinal, meta["id"])


class ShardBatches(ShardStream):
    """Batches formed by each reader from its own stream: ``batch_size`` utterances, or with
    ``budget_frames`` as many of similar length as fit (sorted within pools of ``pool``
    utterances, the pool's batches shuffled). Yields ``(reader, ordinal, items)``.

    ``set_epoch(epoch, skip, first)``: reader r skips its first ``skip[r]`` batches (decoding
    nothing), and DataLoader worker w plays reader ``(w + first) % workers``, so that after a
    resume the DataLoader's round robin starts at the reader whose batch was due next.
    """

    def __init__(
        self,
        shards: list[str],
        frontend_config: dict[str, Any],
        batch_size: int = 8,
        budget_frames: float | None = None,
        pool: int = 2000,
        **stream: Any,
    ) -> None:
        super().__init__(shards, frontend_config, **stream)
        self.batch_size, self.budget_frames, self.pool = batch_size, budget_frames, pool
        self.first = 0

    def set_epoch(self, epoch: int, skip: dict[int, int] | None = None, first: int = 0) -> None:
        super().set_epoch(epoch, skip)
        self.first = first

    def _frames(self, parts: dict[str, bytes]) -> int:
        return int(self.frontend.num_frames(int(json.loads(parts["json"])["num_samples"])))

    def _batches(self, reader: int, readers: int):
        """Index-free batches of raw members, deterministic for (seed, epoch, reader)."""
        from scpc.data.batch_plan import budget_batches

        g = np.random.default_rng([self.seed, self.epoch, reader, 1])
        pending: list = []

        def cut(items: list) -> list[list]:
            if self.budget_frames is None:
                return [
                    items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)
                ]
            frames = [self._frames(p) for _, p, _ in items]
            order = sorted(range(len(items)), key=lambda i: frames[i])
            groups = budget_batches(order, frames, self.budget_frames)
            return [
                [items[i] for i in grp] for grp in (groups[j] for j in g.permutation(len(groups)))
            ]

        size = self.batch_size if self.budget_frames is None else self.pool
        for item in self._shuffled(reader, readers):
            pending.append(item)
            if len(pending) == size:
                yield from cut(pending)
                pending = []
        if pending:
            yield from cut(pending)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        local = (worker + self.first) % workers
        reader = self.rank * workers + local
        skip = self.skip.get(reader, 0)
        for ordinal, batch in enumerate(self._batches(reader, self.world_size * workers)):
            if ordinal < skip:
                continue
            items = []
            for key, parts, shard in batch:
                feats, ali, meta = self._decode(key, parts, shard)
                items.append((feats, ali, (meta["id"], meta.get("speaker", ""))))
            yield reader, ordinal, items
