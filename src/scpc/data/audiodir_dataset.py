"""Training utterances read from a Kaldi data dir, features computed on the fly.

Item i is what :class:`~scpc.data.featdir_dataset.FeatDirDataset` gives for the same
utterance of a feature dir computed with the same front-end (``steps/make_feats.sh``): the
audio (wav.scp: a file or a Kaldi pipe, cut by ``segments``) through the front-end alone,
float32, and the 10 ms alignment (``ali.txt``) mapped to its frames. Both compute it with the
same code, so the two inputs give bitwise the same batches. Frame counts for batch plans come
from ``utt2num_samples`` (scpc.data.num_samples), so start-up reads no audio.

The work runs in DataLoader workers (scpc.data.loader); each item is a function of its index
alone, so any number of workers gives the same batches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from scpc.audio import read_audio
from scpc.data.alignment import read_alignments
from scpc.data.datadir import DataDir, audio_entries
from scpc.data.featdir import frame_labels
from scpc.data.num_samples import num_samples
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config


class AudioDirDataset(torch.utils.data.Dataset):
    """Utterances of a data dir in sorted id order; item i is (feats (T, F), ali or None, i)."""

    def __init__(
        self, root: str | os.PathLike, frontend_config: dict[str, Any], with_ali: bool = False
    ) -> None:
        self.root = Path(root)
        d = DataDir(self.root)
        if not d.has("wav.scp"):
            raise ScpcError(f"{self.root}: not a data dir (no wav.scp)")
        self.frontend_config = frontend_config
        self.frontend = frontend_from_config(frontend_config)
        entries = {utt: (entry, start, end) for utt, entry, start, end in audio_entries(d)}
        samples = num_samples(self.root)
        self.uttids = sorted(samples)
        missing = [u for u in self.uttids if u not in entries]
        if missing:
            raise ScpcError(f"{self.root}: {missing[0]} has no wav.scp or segments entry")
        if not self.uttids:
            raise ScpcError(f"{self.root}: no utterances")
        self.entries = [entries[u] for u in self.uttids]
        self.num_samples = [samples[u] for u in self.uttids]
        self.lengths = [int(self.frontend.num_frames(n)) for n in self.num_samples]
        self.feat_size = self.frontend.feat_size
        self.utt2spk = dict(d.table("utt2spk"))
        self.with_ali = with_ali
        self.alignments: dict[str, list[int]] = {}
        if with_ali:
            if not d.has("ali.txt"):
                raise ScpcError(f"{self.root}: needs ali.txt (frame alignments)")
            self.alignments = dict(read_alignments(d.file("ali.txt")))

    def __len__(self) -> int:
        return len(self.uttids)

    def __getitem__(self, i: int):
        uttid = self.uttids[i]
        entry, start, end = self.entries[i]
        wav = torch.from_numpy(read_audio(entry, start=start, end=end))
        with torch.no_grad():
            feats, lens = self.frontend(wav[None], torch.tensor([len(wav)]))
        num = int(lens[0])
        if num == 0:
            raise ScpcError(
                f"{self.root}: {uttid}: {len(wav)} samples are too short for the front-end"
            )
        feats = feats[0, :num].float()
        ali = None
        if self.with_ali:
            if uttid not in self.alignments:
                raise ScpcError(f"{self.root}/ali.txt: no alignment of {uttid}")
            try:
                ali = frame_labels(self.alignments[uttid], num, self.frontend.frame_shift)
            except ScpcError as e:
                raise ScpcError(f"{self.root}/ali.txt: {uttid}: {e}") from None
        return feats, ali, i
