"""Chunking policies and epoch batch plans."""

import torch

from scpc.data.batch_plan import epoch_plan, rank_part
from scpc.data.chunking import Chunking


def batch(*lens, F=2):
    x = torch.zeros(len(lens), max(lens), F)
    for n, length in enumerate(lens):
        x[n, :length] = torch.arange(length, dtype=torch.float)[:, None] + 1000 * n
    return x, torch.tensor(lens)


def test_fixed_valid_windows_tile_each_utterance():
    x, lens = batch(10, 7)
    chunks, clens, src = Chunking("fixed", "causal", 2, max_chunks=None)(x, lens)
    assert src.tolist() == [0, 0, 0, 1, 1]  # 3 windows of 3 in 10 frames, 2 in 7
    assert clens.tolist() == [3] * 5
    assert chunks[1, :, 0].tolist() == [3, 4, 5]
    assert chunks[4, :, 0].tolist() == [1003, 1004, 1005]


def test_fixed_padded_windows_and_symmetric():
    x, lens = batch(7)
    chunks, clens, _ = Chunking("fixed", "causal", 2, "constant", -1.0, None)(x, lens)
    assert chunks[-1, :, 0].tolist() == [6, -1, -1]
    rep, _, _ = Chunking("fixed", "causal", 2, "replicate", max_chunks=None)(x, lens)
    assert rep[-1, :, 0].tolist() == [6, 6, 6]
    sym, slens, _ = Chunking("fixed", "symmetric", 1, max_chunks=None)(*batch(9))
    assert sym[:, :, 0].tolist() == [[1, 2, 3], [3, 4, 5], [5, 6, 7]]


def test_max_chunks_is_seeded_and_min_frames_drops_short_ones():
    x, lens = batch(40, 40)
    c = Chunking("fixed", "causal", 3, max_chunks=5)
    a = c(x, lens, generator=torch.Generator().manual_seed(1))
    b = c(x, lens, generator=torch.Generator().manual_seed(1))
    assert len(a[0]) == 5 and torch.equal(a[0], b[0])
    none = Chunking("none")
    chunks, clens, src = none(*batch(3, 8, 5), min_frames=5)
    assert src.tolist() == [1, 2] and clens.tolist() == [8, 5] and chunks.shape[1] == 8


def test_ali_chunks_follow_segments():
    x, lens = batch(8)
    ali = [torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])]
    chunks, clens, _ = Chunking("ali", "causal", 1, max_chunks=None)(x, lens, ali)
    assert clens.tolist() == [4, 4]  # segment [0,2) needs a frame before 0: dropped
    assert chunks[0, :, 0].tolist() == [1, 2, 3, 4]


def test_epoch_plans_are_seeded_sorted_and_shared_by_ranks():
    lengths = [
        int(x) for x in torch.randint(10, 1000, (103,), generator=torch.Generator().manual_seed(0))
    ]
    p0 = epoch_plan(lengths, 4, 2, seed=5, epoch=0)
    assert p0 == epoch_plan(lengths, 4, 2, seed=5, epoch=0)
    assert p0 != epoch_plan(lengths, 4, 2, seed=5, epoch=1)
    assert len(p0) == 103 // 8 and all(len(b) == 8 for b in p0)
    assert len({i for b in p0 for i in b}) == 96
    for b in p0:  # length-sorted inside a batch
        assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)
    halves = rank_part(p0[0], 0, 2) + rank_part(p0[0], 1, 2)
    assert halves == p0[0]
    unshuffled = epoch_plan(lengths, 4, 1, 0, 0, shuffle=False)
    assert unshuffled[0] == sorted(range(100), key=lambda i: lengths[i])[:4]  # shortest first
