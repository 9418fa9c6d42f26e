"""scpc-train streaming tar shards (steps/make_shards.sh): a run killed mid-shard (SIGKILL)
resumes exactly where the uninterrupted run would be, with 2 data workers; two DDP processes
stream disjoint readers and agree on every step."""

import pytest
import torch
from conftest import ROOT, kill_once_saved, metric_rows, run_script, write_training_config

from scpc.data.shards import write_shards

pytestmark = pytest.mark.slow  # end-to-end runs: not in ./test.sh --quick

CONFIG = {
    "name": "streamed",
    "feat_type": "raw",
    "frontend": {"name": "raw"},
    "conv": {"output_size": 16, "norm_type": "channel"},
    "recur": {"output_size": 16, "num_layers": 1, "recurrent_type": "gru"},
    "training": {
        "batch_size": 4,
        "max_epochs": 2,
        "num_workers": 2,
        "shuffle_buffer": 6,
        "log_every_steps": 1,
        "checkpoint_every_steps": 2,
        "chunking": {"policy": "fixed", "lobe_size": 3199, "max_chunks": 4},
        "cpc_loss": {"prediction_steps": 3, "negative_samples": 8, "negatives": "utterance"},
    },
}


@pytest.fixture(scope="module")
def shards(mini_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_shards")
    write_shards(mini_data / "dev", out, shard_seconds=20)
    return out


def config(path, **training):
    return write_training_config(path, CONFIG, **training)


rows = metric_rows


def test_streamed_training_resumes_exactly_after_sigkill(tmp_path, shards, mini_data):
    valid = mini_data / "test"
    full = config(tmp_path / "full" / "model.yaml")
    run_script(".venv/bin/scpc-train", "--quiet", full, shards, valid)
    assert len([r for r in rows(full.parent) if r[0] == "train"]) >= 20
    killed = config(tmp_path / "killed" / "model.yaml")
    last = killed.parent / "last.ckpt"
    kill_once_saved([ROOT / ".venv/bin/scpc-train", "--quiet", killed, shards, valid], last)
    state = torch.load(last, weights_only=True)["progress"]
    assert state["epoch"] == 0 and state["stream"]["readers"]  # mid-epoch, mid-shard
    run_script(".venv/bin/scpc-train", "--quiet", killed, shards, valid)
    assert rows(killed.parent) == rows(full.parent)
    a = torch.load(full.parent / "last.ckpt", weights_only=True)["model"]
    b = torch.load(last, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_stream_disjoint_readers_in_step(tmp_path, shards, mini_data):
    cfg = config(tmp_path / "two" / "model.yaml", max_epochs=1, num_workers=1, batch_size=2)
    run_script(
        ROOT / "utils" / "run_local.sh", "--procs-per-node", "2", "--num-threads", "1",
        tmp_path / "two" / "log" / "train.log", "scpc-train", "--quiet", cfg, shards,
        mini_data / "test",
    )  # fmt: skip
    log = (tmp_path / "two" / "train.log").read_text()
    assert "2 process(es)" in log and "epoch 0 step" in log
    steps = [int(r[2]) for r in rows(tmp_path / "two") if r[0] == "train"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10
