"""Features computed on the fly from a Kaldi data dir (scpc.data.audiodir_dataset) or local
shards read by index, against precomputed feature dirs: the same items bitwise, the same
training loss for the same seed,
any number of data workers; exact lengths (utt2num_samples) without decoding; bad audio is
one line naming the file."""

import csv
import shutil

import pytest
import torch
import yaml
from conftest import ROOT, mini_feat_dirs, run_script, train_tiny

from scpc.audio import read_audio
from scpc.data.audiodir_dataset import AudioDirDataset
from scpc.data.datadir import DataDir, audio_entries, copy_filtered, read_table
from scpc.data.featdir_dataset import FeatDirDataset
from scpc.data.loader import open_dataset, read_batches
from scpc.data.num_samples import num_samples
from scpc.data.shards import write_shards
from scpc.errors import ScpcError


@pytest.mark.parametrize("feat_type", ["raw", "fbank-80", "mfcc-13"])
def test_items_equal_the_precomputed_feature_dirs_bitwise(tmp_path, mini_data, feat_type):
    frontend, (dev, _) = mini_feat_dirs(mini_data, tmp_path / "feats", feat_type)
    data = tmp_path / "dev"
    shutil.copytree(mini_data / "dev", data)
    live = AudioDirDataset(data, frontend, with_ali=True)
    stored = FeatDirDataset(dev, with_ali=True)
    assert live.uttids == stored.uttids and live.lengths == stored.lengths
    assert live.feat_size == stored.feat_size and live.utt2spk == stored.utt2spk
    for i in range(0, len(live), 7):
        (a, ali_a, _), (b, ali_b, _) = live[i], stored[i]
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
        assert torch.equal(ali_a, ali_b)


def test_utt2num_samples_is_exact_and_written_once(tmp_path, mini_data):
    data = tmp_path / "dev"
    shutil.copytree(mini_data / "dev", data)
    counts = num_samples(data)
    for utt, entry, start, end in list(audio_entries(DataDir(data)))[:10]:
        assert counts[utt] == len(read_audio(entry, start=start, end=end))
    table = read_table(data / "utt2num_samples")
    assert len(table) == 72 and int(table[utt]) == counts[utt]
    # segments: two cuts of one recording, read as read_audio cuts them
    seg = tmp_path / "seg"
    seg.mkdir()
    rec, entry = next(iter(read_table(data / "wav.scp").items()))
    (seg / "wav.scp").write_text(f"{rec} {entry}\n")
    (seg / "segments").write_text(f"a {rec} 0.0 0.5\nb {rec} 0.25 -1\n")
    (seg / "utt2spk").write_text("a s\nb s\n")
    assert num_samples(seg) == {"a": 8000, "b": len(read_audio(entry)) - 4000}
    ds = AudioDirDataset(seg, {"name": "raw"})
    assert [len(ds[i][0]) for i in range(2)] == ds.lengths == [8000, len(read_audio(entry)) - 4000]


def test_workers_give_the_same_items_in_order(tmp_path, mini_data):
    frontend = {"name": "raw"}
    ds = open_dataset(mini_data / "dev", frontend)
    batches = [[5, 1, 9], [0], [70, 71, 2, 3]]
    inline = list(read_batches(ds, batches, 0))
    workers = list(read_batches(ds, batches, 2))
    assert [[i for _, _, i in b] for b in workers] == batches
    for x, y in zip(inline, workers):
        assert all(torch.equal(a[0], b[0]) for a, b in zip(x, y))


@pytest.mark.slow
def test_training_from_audio_or_shards_equals_training_from_feature_dirs(tmp_path, mini_data):
    frontend, dirs = mini_feat_dirs(mini_data, tmp_path / "feats", "fbank-80")
    write_shards(mini_data / "dev", tmp_path / "shards", shard_seconds=30)
    config = {
        "name": "tiny",
        "feat_type": "fbank-80",
        "frontend": frontend,
        "latent_type": "id",
        "context_type": "recur",
        "recur": {"output_size": 16},
        "training": {
            "batch_size": 4,
            "max_epochs": 1,
            "max_steps": 3,
            "num_workers": 1,
            "shard_access": "index",
            "log_every_steps": 1,
            "chunking": {"policy": "fixed", "lobe_size": 120, "max_chunks": 8},
            "cpc_loss": {"prediction_steps": 4, "negative_samples": 8},
        },
    }
    for name in "abc":
        (tmp_path / name).mkdir()
    stored = train_tiny(tmp_path / "a", config, dirs)
    live = train_tiny(tmp_path / "b", config, [mini_data / "dev", mini_data / "test"])
    sharded = train_tiny(tmp_path / "c", config, [tmp_path / "shards", mini_data / "test"])

    def rows(exp):
        with open(exp / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if k not in ("audio_per_s", "wall_s")}
                    for r in csv.DictReader(f)]  # fmt: skip

    assert rows(live) == rows(stored) == rows(sharded) and len(rows(live)) == 4
    a = torch.load(stored / "last.ckpt", weights_only=True)["model"]
    for exp in (live, sharded):
        b = torch.load(exp / "last.ckpt", weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_or_broken_audio_is_one_line_naming_it(tmp_path, mini_data):
    data = tmp_path / "d"
    copy_filtered(mini_data / "dev", data, list(read_table(mini_data / "dev" / "utt2spk"))[:3])
    num_samples(data)
    wav = read_table(data / "wav.scp")
    utt = next(iter(wav))
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC but not really")
    (data / "wav.scp").write_text(
        "".join(f"{u} {broken if u == utt else e}\n" for u, e in wav.items())
    )
    ds = AudioDirDataset(data, {"name": "raw"})
    with pytest.raises(ScpcError, match=f"{broken}: not a readable audio file"):
        ds[0]
    (data / "utt2num_samples").unlink()
    missing = tmp_path / "gone.flac"
    (data / "wav.scp").write_text(
        "".join(f"{u} {missing if u == utt else e}\n" for u, e in wav.items())
    )
    with pytest.raises(ScpcError, match=f"{missing}: no such audio file"):
        AudioDirDataset(data, {"name": "raw"})
    proc = run_script(ROOT / ".venv/bin/scpc-datadir", "utt2num-samples", data, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and str(missing) in proc.stderr


@pytest.mark.slow
@pytest.mark.quick  # ./test.sh --quick's end-to-end recipe: run.sh from the corpus to best.ckpt
def test_run_sh_trains_from_audio_by_default(tmp_path):
    """No float32 copy of the audio: stage 1 writes utt2num_samples only."""
    exp = tmp_path / "exp"
    em = exp / "t" / "version_0"
    em.mkdir(parents=True)
    from scpc import config as cfg

    tiny = {
        "name": "t",
        "feat_type": "raw",
        "frontend": {"name": "raw"},
        "conv": {"output_size": 8},
        "recur": {"output_size": 8},
        "training": {"batch_size": 8, "max_epochs": 1, "max_steps": 2,
                     "chunking": {"policy": "fixed", "lobe_size": 4799, "max_chunks": 4},
                     "cpc_loss": {"prediction_steps": 2, "negative_samples": 4}},
    }  # fmt: skip
    (em / "model.yaml").write_text(cfg.dump(cfg.merge(cfg.DEFAULTS, tiny, "test")))
    args = ["--model", "t", "--datadir", tmp_path / "data", "--expdir", exp]
    proc = run_script(ROOT / "run.sh", *args, "--stop-stage", "3")
    assert "computed on the fly" in proc.stdout and (em / "best.ckpt").is_file()
    data = tmp_path / "data" / "mini"
    assert (data / "train" / "utt2num_samples").is_file()
    assert not (data / "raw").exists()  # no feature dirs
    assert yaml.safe_load((em / "model.yaml").read_text())["feats"] == "on_the_fly"
