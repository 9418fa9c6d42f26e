"""Length-bucketed dynamic batches (training.batch_seconds): deterministic for a seed, every
utterance once per epoch, within the budget, little padding, the same global batches for any
number of processes; DDP with bucketed batches equals one process."""

import pytest
import torch
from conftest import ROOT, run_script
from test_train import feats, losses, train, write_config  # noqa: F401 (a fixture)

from scpc.data.batch_plan import (
    bucketed_plan,
    budget_batches,
    epoch_plan,
    padding_ratio,
    rank_offset,
    rank_part,
)
from scpc.data.num_samples import num_samples
from scpc.frontend import frontend_from_config, load_frontend_config


def test_plan_is_seeded_complete_and_within_budget():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(50, 1600, (1000,), generator=g).tolist() + [5000]
    plan = bucketed_plan(lengths, 4000, seed=3, epoch=1)
    assert plan == bucketed_plan(lengths, 4000, seed=3, epoch=1)
    assert plan != bucketed_plan(lengths, 4000, seed=3, epoch=2)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b) * len(b) <= 4000 or len(b) == 1 for b in plan)
    assert [5000 in [lengths[i] for i in b] for b in plan].count(True) == 1
    assert padding_ratio(plan, lengths) < 1.05
    assert budget_batches([0, 1, 2], [10, 20, 30], 45) == [[0, 1], [2]]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_share_each_global_batch_contiguously(world_size):
    for n in range(0, 11):
        batch = list(range(100, 100 + n))
        parts = [rank_part(batch, r, world_size) for r in range(world_size)]
        assert sum(parts, []) == batch
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        for r, part in enumerate(parts):
            assert batch[rank_offset(n, r, world_size) :][: len(part)] == part


def test_bucketing_cuts_the_mini_training_sets_padding(mini_data):
    """fbank-80 frame counts of the mini training set: padding of fixed batches of 8 in random
    order, of scpc's pooled sort, and of 80 s buckets."""
    fe = frontend_from_config(load_frontend_config(ROOT / "conf" / "feats" / "fbank-80.json"))
    lengths = [fe.num_frames(n) for n in num_samples(mini_data / "train").values()]
    shuffled = epoch_plan(lengths, 8, 1, 0, 0)
    bucketed = bucketed_plan(lengths, 80 / 0.01, 0, 0)
    ratio = padding_ratio(bucketed, lengths)
    print(f"padding: pooled-sort batches of 8 {padding_ratio(shuffled, lengths):.3f}, "
          f"80 s buckets {ratio:.3f}")  # fmt: skip
    assert ratio <= 1.1


@pytest.mark.slow
def test_two_process_ddp_with_buckets_equals_one_process(tmp_path, feats):  # noqa: F811
    """batch_seconds is per step over all processes: 2 processes see the same global batches
    (shares of 2 and 1 utterances included)."""
    one, _ = train(tmp_path, feats, name="one", max_epochs=1, batch_seconds=3.0)
    cfg = write_config(tmp_path / "two" / "model.yaml", max_epochs=1, batch_seconds=3.0)
    run_script(
        ROOT / "utils" / "run_local.sh", "--procs-per-node", "2", "--num-threads", "1",
        tmp_path / "two" / "log" / "train.log", "scpc-train", "--quiet", cfg, *feats,
    )  # fmt: skip
    one_rows, two_rows = losses(one), losses(tmp_path / "two")
    assert [r[:3] for r in one_rows] == [r[:3] for r in two_rows]
    assert len([r for r in one_rows if r[0] == "train"]) >= 4
    a = torch.load(one / "last.ckpt", weights_only=True)["model"]
    b = torch.load(tmp_path / "two" / "last.ckpt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.slow
def test_probes_take_length_buckets(tmp_path, mini_data):
    """A SUPERB-style probe with train.batch_seconds: buckets in the cached upstream's frames."""
    import test_superb

    from scpc.data.datadir import copy_filtered, select_utterances

    small = tmp_path / "small"
    for split, n in (("train", 8), ("dev", 4), ("test", 4)):
        utts = select_utterances(mini_data / split, "shortest", n)
        copy_filtered(mini_data / split, small / split, utts)
    fbank = tmp_path / "fbank41.ckpt"
    run_script(ROOT / ".venv/bin/scpc-init", "frontend", ROOT / "conf/feats/fbank-41.json", fbank)
    cfg = test_superb.small_config(tmp_path, small, batch_seconds=6.0)
    t = test_superb.trainer(cfg, fbank, tmp_path / "run")
    results = t.fit()
    assert t.length_seconds("train") == 0.01  # fbank-41 frames, cached
    assert "dev" in results and (tmp_path / "run" / "results.json").is_file()
    lengths = t.lengths("train")
    plan = bucketed_plan(lengths, 6.0 / 0.01, 0, 0)
    assert all(max(lengths[i] for i in b) * len(b) <= 600 or len(b) == 1 for b in plan)
    assert len(plan) > 1  # 8 short utterances do not fit 6 s at once
