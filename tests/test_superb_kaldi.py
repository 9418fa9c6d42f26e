"""Probes on precomputed features given as a Kaldi feats.scp: scpc-a2r --format kaldi's tables
probe exactly as the checkpoint they came from, and MFCCs written by kaldiio (compressed, as
Kaldi's make_mfcc.sh stores them) run through local/superb_run.sh."""

from __future__ import annotations

import json

import kaldiio
import pytest
import test_superb
import torch
from conftest import ROOT, run_script

from scpc import audio
from scpc.cli import a2r, superb
from scpc.data.datadir import read_table
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config, load_frontend_config

small_config = test_superb.small_config
small_data, fbank41 = test_superb.small_data, test_superb.fbank41  # fixtures

SPLITS = ("train", "dev", "test")


def all_wavs(data, out):
    """One wav.scp of every split's utterances (a table covers every split of a task)."""
    lines = [(data / s / "wav.scp").read_text() for s in SPLITS]
    out.write_text("".join(lines))
    return out


@pytest.fixture(scope="module")
def a2r_table(small_data, fbank41, tmp_path_factory):
    out = tmp_path_factory.mktemp("reps") / "fbank41_kaldi"
    wavs = all_wavs(small_data, out.parent / "wav.scp")
    assert a2r.main(["--format", "kaldi", "--in-map", str(wavs), str(fbank41), str(out)]) == 0
    return out / "feats.scp"


def test_a2r_writes_kaldis_frame_shift_beside_the_table(a2r_table):
    assert (a2r_table.parent / "frame_shift").read_text() == "0.01\n"


@pytest.mark.slow
def test_a_probe_on_the_table_equals_the_probe_on_its_checkpoint(
    tmp_path, small_data, fbank41, a2r_table, capsys
):
    """The same head, steps and scores: the table holds the checkpoint's float32 outputs, read
    without the probe's float16 cache (train.cache=none on the checkpoint side)."""
    config = small_config(tmp_path, small_data, "phone_linear", max_steps=4)
    results = {}
    for name, upstream in (("ckpt", fbank41), ("scp", a2r_table)):
        out = tmp_path / name
        args = ["train", "--task", "phone_linear", "--config", str(config)]
        args += ["--upstream", str(upstream), "--out", str(out), "-o", "train.cache=none"]
        assert superb.main(args) == 0
        results[name] = json.loads((out / "results.json").read_text())
    assert results["scp"]["test"] == results["ckpt"]["test"]
    assert results["scp"]["dev"] == results["ckpt"]["dev"]
    assert results["scp"]["upstream_name"] == "fbank41_kaldi"
    assert results["scp"]["layers"] == [0] and results["scp"]["finetune"] is False
    capsys.readouterr()
    probe = tmp_path / "scp" / "dev-best.ckpt"
    assert superb.main(["evaluate", str(probe), "--split", "test"]) == 0
    assert capsys.readouterr().out.startswith(
        f"phone_linear test: accuracy {results['scp']['value']:.2f}"
    )


def test_a_table_missing_an_utterance_or_asked_to_finetune_is_refused(
    tmp_path, small_data, a2r_table
):
    lines = a2r_table.read_text().splitlines()
    part = tmp_path / "part" / "feats.scp"
    part.parent.mkdir()
    part.write_text("\n".join(lines[1:]) + "\n")
    config = small_config(tmp_path, small_data, "phone_linear", max_steps=2)
    args = ["train", "--task", "phone_linear", "--config", str(config)]
    with pytest.raises(ScpcError, match=rf"{part}: no features of utterance {lines[0].split()[0]}"):
        superb.main([*args, "--upstream", str(part), "--out", str(tmp_path / "a")])
    with pytest.raises(ScpcError, match="precomputed features cannot be fine-tuned"):
        superb.main(
            [*args, "--upstream", str(a2r_table), "--out", str(tmp_path / "b"), "--finetune"]
        )
    with pytest.raises(ScpcError, match="--layer 1: the upstream has 1 layers"):
        superb.main(
            [*args, "--upstream", str(a2r_table), "--out", str(tmp_path / "c"), "--layer", "1"]
        )


@pytest.fixture(scope="module")
def kaldi_mfcc(small_data, tmp_path_factory):
    """13 MFCCs of every utterance, written by kaldiio as Kaldi's compress=true does (global
    header, kSpeechFeature), with no frame_shift file: Kaldi's 10 ms."""
    fe = frontend_from_config(load_frontend_config(ROOT / "conf" / "feats" / "mfcc-13.json"))
    out = tmp_path_factory.mktemp("kaldi") / "mfcc"
    out.mkdir()
    ark, scp = out / "raw_mfcc.1.ark", out / "feats.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}", compression_method=2) as writer:
        for split in SPLITS:
            for utt, entry in sorted(read_table(small_data / split / "wav.scp").items()):
                wav = torch.from_numpy(audio.read_audio(entry))
                feats, lens = fe(wav[None], torch.tensor([len(wav)]))
                writer(utt, feats[0, : int(lens[0])].numpy())
    return scp


@pytest.mark.slow
def test_kaldi_mfccs_run_through_superb_run_sh(tmp_path, mini_data, small_data, kaldi_mfcc):
    conf = small_config(tmp_path, small_data, "phone_linear", max_steps=4)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(conf.read_text())
    opts = ["--task", "phone_linear", "--feats-scp", kaldi_mfcc, "--cmvn", "true"]
    opts += ["--config", tiny, "--datadir", mini_data.parent, "--expdir", tmp_path / "exp"]
    proc = run_script(ROOT / "local" / "superb_run.sh", *opts)
    run = kaldi_mfcc.parent / "superb" / "tiny.cmvn-true"
    assert proc.stdout.splitlines() == [proc.stdout.strip()]
    assert proc.stdout.startswith("phone_linear mfcc: accuracy ") and proc.stdout.strip().endswith(
        str(run)
    )
    r = json.loads((run / "results.json").read_text())
    assert r["upstream"] == str(kaldi_mfcc) and r["cmvn"] is True and 0 <= r["value"] <= 100
    assert "13 dims, 160 samples/frame" in (run / "train.log").read_text()
    both = run_script(ROOT / "local" / "superb_run.sh", *opts, "--upstream", "fbank", check=False)
    assert both.returncode == 1 and "give --upstream or --feats-scp, not both" in both.stderr
