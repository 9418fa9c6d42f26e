"""Kaldi tables: scpc-a2r --format kaldi (through steps/make_reps.sh too), read back by kaldiio
and by scpc-abx, which scores a feats.scp as it scores the same representations as .pt files."""

from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import torch
from conftest import ROOT, run_script

from scpc.cli import a2r, abx
from scpc.errors import ScpcError
from scpc.frontend import load_frontend_config
from scpc.models.checkpoint import save_inference_checkpoint
from scpc.models.encoders import FeedForwardEncoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A random frame-wise encoder over 41 filter banks (10 ms frames)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "fb.ckpt"
    fbank = load_frontend_config(ROOT / "conf" / "feats" / "fbank-41.json")
    save_inference_checkpoint(path, FeedForwardEncoder(41, 12), fbank)
    return path


@pytest.mark.slow
def test_make_reps_kaldi_tables_equal_the_pt_files_and_score_the_same(tmp_path, mini_data, ckpt):
    dev = mini_data / "dev"
    pt_dir, kaldi_dir = tmp_path / "pt", tmp_path / "kaldi"
    run_script(ROOT / "steps" / "make_reps.sh", "--nj", "2", dev / "wav.scp", ckpt, pt_dir)
    made = run_script(ROOT / "steps" / "make_reps.sh", "--nj", "2", "--a2r-opts",
                      "--format kaldi", dev / "wav.scp", ckpt, kaldi_dir)  # fmt: skip
    assert "72 files written" in made.stdout
    scp = kaldi_dir / "feats.scp"
    keys = [line.split()[0] for line in scp.read_text().splitlines()]
    assert keys == sorted(keys) and len(keys) == 72  # Kaldi's order, both jobs' parts
    table = kaldiio.load_scp(str(scp))
    frames = dict(line.split() for line in (kaldi_dir / "utt2num_frames").read_text().splitlines())
    for key in keys:
        want = torch.load(pt_dir / f"{key}.pt").numpy()
        got = table[key]
        assert got.dtype == np.float32 and np.array_equal(got, want)
        assert int(frames[key]) == want.shape[0]
    # Kaldi's binary float-matrix layout: "<key> " then "\0B" and the "FM " token
    ark = (kaldi_dir / "feats.1.ark").read_bytes()
    first = (kaldi_dir / "feats.1.scp").read_text().split()[0]
    assert ark.startswith(f"{first} ".encode() + b"\0BFM ")
    scores = []
    for reps in (pt_dir, scp):
        out = tmp_path / f"{reps.name}.csv"
        assert abx.main([str(reps), str(dev / "abx.item"), "--checkpoint", str(ckpt),
                         "--out", str(out)]) == 0  # fmt: skip
        scores.append(out.read_text())
    assert scores[0] == scores[1]
    again = run_script(ROOT / "steps" / "make_reps.sh", "--nj", "2", "--a2r-opts",
                       "--format kaldi", dev / "wav.scp", ckpt, kaldi_dir)  # fmt: skip
    assert "0 files written, 72 already present" in again.stdout  # finished jobs: skipped


def test_a2r_without_jobs_merges_its_one_part(tmp_path, mini_data, ckpt, capsys):
    out = tmp_path / "k"
    args = [
        "--format",
        "kaldi",
        "--dtype",
        "float64",
        "--in-map",
        str(mini_data / "test" / "wav.scp"),
    ]
    assert a2r.main([*args, str(ckpt), str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "feats.1.ark", "feats.1.scp", "feats.scp", "frame_shift", "utt2num_frames",
        "utt2num_frames.1",
    ]  # fmt: skip
    assert (out / "frame_shift").read_text() == "0.01\n"  # Kaldi's, in seconds
    mats = dict(kaldiio.load_scp_sequential(str(out / "feats.scp")))
    assert len(mats) == 72 and all(m.dtype == np.float64 for m in mats.values())
    # run again on the finished dir: nothing to do, and the tables stay as they are
    before = {f: (out / f).read_bytes() for f in ("feats.1.ark", "feats.scp", "utt2num_frames")}
    assert a2r.main([*args, str(ckpt), str(out)]) == 0
    assert all((out / f).read_bytes() == b for f, b in before.items())


def test_kaldi_format_errors_are_one_line(tmp_path, mini_data, ckpt):
    wav = ["--in-map", str(mini_data / "test" / "wav.scp"), str(ckpt), str(tmp_path / "k")]
    with pytest.raises(ScpcError, match="one archive per job"):
        a2r.main(["--format", "kaldi", "--nj", "2", *wav])
    with pytest.raises(ScpcError, match="one layer, not all"):
        a2r.main(["--format", "kaldi", "--layer", "all", *wav])
    bad = tmp_path / "feats.scp"
    bad.write_text("utt1 /nonexistent/feats.ark:12\n")
    item = tmp_path / "x.item"
    item.write_text("#file onset offset #phone prev-phone next-phone speaker\n"
                    "utt1 0.0 0.1 a b c s\n")  # fmt: skip
    with pytest.raises(ScpcError, match=r"feats.scp\[utt1\]: cannot read"):
        abx.main([str(bad), str(item), "--frame-shift", "0.01"])
    bad.write_text("utt1\n")
    with pytest.raises(ScpcError, match="feats.scp:1: expected"):
        abx.main([str(bad), str(item), "--frame-shift", "0.01"])
