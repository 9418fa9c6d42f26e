"""Reading feature dirs (``feat/<utt>.pt`` and optional ``ali/<utt>.pt``) for training."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from scpc.data.datadir import read_table
from scpc.data.featdir import read_feat_dir_frontend
from scpc.errors import ScpcError


class FeatDirDataset(torch.utils.data.Dataset):
    """Utterances of a feature dir in sorted id order; item i is (feats (T, F), ali or None, i).

    Lengths are read from the file headers only (memory-mapped), so listing a large dir
    does not load it.
    """

    def __init__(self, root: str | os.PathLike, with_ali: bool = False) -> None:
        self.root = Path(root)
        feat = self.root / "feat"
        if not feat.is_dir():
            raise ScpcError(f"{self.root}: not a feature dir (no feat/); run stage 1 first")
        self.uttids = sorted(p.name[:-3] for p in feat.glob("*.pt"))
        if not self.uttids:
            raise ScpcError(f"{feat}: no feature files")
        self.with_ali = with_ali
        if with_ali and not (self.root / "ali").is_dir():
            raise ScpcError(f"{self.root}: chunking policy 'ali' needs ali/ (alignments)")
        self.lengths = [self._shape(u)[0] for u in self.uttids]
        self.feat_size = self._shape(self.uttids[0])[1]
        spk_file = self.root / "ext" / "utt2spk"
        self.utt2spk = dict(read_table(spk_file)) if spk_file.is_file() else {}

    @property
    def frontend_config(self) -> dict:
        """The front-end the features were computed with (frontend.json)."""
        return read_feat_dir_frontend(self.root)

    def _shape(self, uttid: str) -> torch.Size:
        path = self.root / "feat" / f"{uttid}.pt"
        try:
            x = torch.load(path, mmap=True, weights_only=True)
        except Exception as e:
            raise ScpcError(f"{path}: unreadable feature file ({type(e).__name__})") from None
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ScpcError(f"{path}: expected a (frames, features) tensor")
        return x.shape

    def __len__(self) -> int:
        return len(self.uttids)

    def __getitem__(self, i: int):
        uttid = self.uttids[i]
        feats = torch.load(self.root / "feat" / f"{uttid}.pt", weights_only=True).float()
        if torch.isnan(feats).any():
            raise ScpcError(f"{self.root}/feat/{uttid}.pt: NaN in features")
        ali = None
        if self.with_ali:
            path = self.root / "ali" / f"{uttid}.pt"
            if not path.is_file():
                raise ScpcError(f"{path}: missing alignment (chunking policy 'ali')")
            ali = torch.load(path, weights_only=True).long()
        return feats, ali, i


def collate(items):
    """Pad a list of dataset items: feats (N, T, F), lens (N,), alis (list or None), ids (N,)."""
    feats = [f for f, _, _ in items]
    lens = torch.tensor([len(f) for f in feats])
    alis = [a for _, a, _ in items] if items and items[0][1] is not None else None
    third = [i for _, _, i in items]  # dataset indices, or a stream's (id, speaker)
    ids = torch.tensor(third) if all(isinstance(i, int) for i in third) else third
    return pad_sequence(feats, batch_first=True), lens, alis, ids
