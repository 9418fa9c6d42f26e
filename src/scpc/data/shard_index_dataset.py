"""Training utterances read from local tar shards by random access (``shard_access: index``).

``steps/make_shards.sh`` writes ``shards.idx`` beside the shards: where each utterance's
``.flac`` and ``.json`` members lie in its shard. With it, item i is what
:class:`~scpc.data.audiodir_dataset.AudioDirDataset` gives for the same utterance of the data
dir the shards were made from (the utterances in sorted id order, the same FLAC bytes decoded
by the same code, the same front-end), so the trainer's batch plans, bucketing and the
1-process == N-process guarantee carry over unchanged: a cluster file system serves a few
large files instead of millions of small ones. Shards behind commands (object stores) have
no random access: they are streamed (scpc.data.shards.ShardBatches).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from scpc.audio import is_pipe
from scpc.data.shards import MEMBERS, decode_utterance, read_shard_list, shard_key
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config


def read_members(path: str, spans: list[tuple[int, int]]) -> list[bytes]:
    """The bytes at each (offset, size) of one shard, read through one open file."""
    out = []
    with open(path, "rb") as f:
        for offset, size in spans:
            f.seek(offset)
            data = f.read(size)
            if len(data) != size:
                raise ScpcError(f"{path}: truncated shard ({size} bytes expected at {offset})")
            out.append(data)
    return out


class ShardIndexDataset(torch.utils.data.Dataset):
    """Utterances of a shard dir in sorted id order; item i is (feats (T, F), ali or None, i)."""

    def __init__(
        self, root: str | os.PathLike, frontend_config: dict[str, Any], with_ali: bool = False
    ) -> None:
        self.root = Path(root)
        base = self.root if self.root.is_dir() else self.root.parent
        self.shards = read_shard_list(self.root)
        remote = [s for s in self.shards if is_pipe(s)]
        if remote:
            raise ScpcError(
                f"{self.root}: {remote[0]!r} is a command: shards behind commands are streamed "
                "(training.shard_access: stream), not read by index"
            )
        index = base / MEMBERS
        if not index.is_file():
            raise ScpcError(f"{index}: no such file (remake the shards with steps/make_shards.sh)")
        self.frontend_config = frontend_config
        self.frontend = frontend_from_config(frontend_config)
        self.feat_size = self.frontend.feat_size
        self.with_ali = with_ali
        self.uttids: list[str] = []
        self.where: list[tuple[int, int, int, int, int]] = []
        self.num_samples: list[int] = []
        self.utt2spk: dict[str, str] = {}
        with open(index) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                try:
                    utt, shard, fo, fs, jo, js, n = fields[0], *map(int, fields[1:7])
                    speaker = fields[7]
                    if not 0 <= shard < len(self.shards):
                        raise ValueError
                except (ValueError, IndexError):
                    raise ScpcError(f"{index}:{lineno}: malformed line") from None
                self.uttids.append(utt)
                self.where.append((shard, fo, fs, jo, js))
                self.num_samples.append(n)
                self.utt2spk[utt] = speaker
        if not self.uttids:
            raise ScpcError(f"{index}: no utterances")
        self.lengths = [int(self.frontend.num_frames(n)) for n in self.num_samples]

    def __len__(self) -> int:
        return len(self.uttids)

    def __getitem__(self, i: int):
        shard, fo, fs, jo, js = self.where[i]
        path = self.shards[shard]
        if not os.path.isfile(path):
            raise ScpcError(f"{path}: no such shard")
        flac, meta_json = read_members(path, [(fo, fs), (jo, js)])
        parts = {"flac": flac, "json": meta_json}
        feats, ali, meta = decode_utterance(
            self.frontend, shard_key(self.uttids[i]), parts, path, self.with_ali
        )
        if meta.get("id") != self.uttids[i]:
            raise ScpcError(
                f"{path}: the member at {jo} is not {self.uttids[i]} (stale shards.idx)"
            )
        return feats, ali, i
