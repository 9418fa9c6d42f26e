"""scpc-feats and steps/make_feats.sh."""

import json

import pytest
import torch
from conftest import ROOT, run_script

from scpc.audio import read_audio
from scpc.cli.feats import main as feats_main
from scpc.data.alignment import read_alignments
from scpc.data.datadir import copy_filtered, read_table
from scpc.data.featdir import frame_labels, job_share, read_feat_dir_frontend
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config, load_frontend_config

FEATS = ROOT / "conf" / "feats"


@pytest.fixture(scope="module")
def small(mini_data, tmp_path_factory):
    """Five dev utterances of the mini corpus, with their alignments."""
    dest = tmp_path_factory.mktemp("small") / "dev5"
    utts = list(read_table(mini_data / "dev" / "utt2spk"))[:5]
    copy_filtered(mini_data / "dev", dest, utts)
    return dest


def feats(*args):
    return feats_main([str(a) for a in args])


@pytest.mark.parametrize("name", ["fbank-41", "raw"])
def test_feature_dir_layout(small, tmp_path, name):
    out = tmp_path / name
    assert feats("--frontend", FEATS / f"{name}.json", small, out) == 0
    config = load_frontend_config(FEATS / f"{name}.json")
    fe = frontend_from_config(config)
    assert read_feat_dir_frontend(out) == config
    assert (out / "ext" / "utt2spk").read_text() == (small / "utt2spk").read_text()
    assert (out / ".complete").exists()
    alis = dict(read_alignments(small / "ali.txt"))
    wavs = read_table(small / "wav.scp")
    assert sorted(p.stem for p in (out / "feat").iterdir()) == sorted(wavs)
    for utt, entry in wavs.items():
        x = read_audio(entry)
        feat = torch.load(out / "feat" / f"{utt}.pt")
        ali = torch.load(out / "ali" / f"{utt}.pt")
        num = fe.num_frames(len(x))
        assert feat.dtype == torch.float32 and feat.shape == (num, fe.feat_size)
        assert ali.dtype == torch.long and ali.shape == (num,)
        labels = torch.tensor(alis[utt])
        if name == "raw":
            assert torch.equal(feat[:, 0], torch.from_numpy(x))
            labels = labels.repeat_interleave(160)
        common = min(len(labels), num)
        assert torch.equal(ali[:common], labels[:common])
        assert (ali[common:] == labels[-1]).all()


def test_pydrobert_spect_data_set_reads_it(small, tmp_path):
    from pydrobert.torch.data import SpectDataSet

    feats("--frontend", FEATS / "fbank-80.json", small, tmp_path / "f")
    ds = SpectDataSet(str(tmp_path / "f"))
    assert len(ds) == 5 and ds.has_ali
    feat, ali = ds[0][:2]
    assert feat.shape[1] == 80 and ali.shape == (feat.shape[0],)


@pytest.mark.slow
def test_pydrobert_cli_reads_a_dir_that_make_feats_sh_wrote(small, tmp_path):
    """pydrobert-pytorch's own get-torch-spect-data-dir-info on steps/make_feats.sh's output."""
    out = tmp_path / "fbank-41"
    run_script(ROOT / "steps" / "make_feats.sh", "--nj", "2", "--frontend",
               FEATS / "fbank-41.json", small, out)  # fmt: skip
    proc = run_script(ROOT / ".venv" / "bin" / "get-torch-spect-data-dir-info", out)
    info = dict(line.split() for line in proc.stdout.splitlines())
    frames = sum(torch.load(p).shape[0] for p in (out / "feat").iterdir())
    assert (info["num_utterances"], info["num_filts"]) == ("5", "41")
    assert int(info["total_frames"]) == frames
    counts = sum(int(v) for k, v in info.items() if k.startswith("count_"))
    assert counts == frames  # every frame has its phone label in ali/


def test_jobs_share_the_work_and_resume(small, tmp_path):
    out = tmp_path / "f"
    args = ["--frontend", FEATS / "fbank-80.json"]
    feats(*args, "--job", 2, "--num-jobs", 2, small, out)
    done = {p.name: p.stat().st_mtime_ns for p in (out / "feat").iterdir()}
    assert len(done) == 3 and not (out / ".complete").exists()
    feats(*args, "--job", 2, "--num-jobs", 2, small, out)  # all skipped
    (out / "ali" / sorted(done)[0]).unlink()  # a half-done utterance is redone
    feats(*args, small, out)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "feat").iterdir()}
    assert len(after) == 5 and (out / ".complete").exists()
    redone = sorted(done)[0]
    assert all(after[k] == v for k, v in done.items() if k != redone)
    assert after[redone] != done[redone]


def test_mismatched_frontend_is_refused(small, tmp_path):
    out = tmp_path / "f"
    feats("--frontend", FEATS / "fbank-41.json", small, out)
    for extra in ([], ["--job", "1", "--num-jobs", "2"], ["--check"]):
        proc = run_script(
            "scpc-feats", "--frontend", FEATS / "fbank-80.json", *extra, small, out, check=False
        )
        assert proc.returncode == 1
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and "another front-end" in lines[0], proc.stderr
        assert lines[0].startswith(f"scpc-feats: {out}/frontend.json")


def test_bad_inputs_are_one_line_errors(small, tmp_path):
    with pytest.raises(ScpcError, match="wav.scp: no such file"):
        feats(tmp_path, tmp_path / "f")
    with pytest.raises(ScpcError, match="no such front-end config"):
        feats("--frontend", tmp_path / "x.json", small, tmp_path / "f")


def test_job_share_and_frame_labels():
    utts = [str(i) for i in range(7)]
    shares = [job_share(utts, j, 3) for j in (1, 2, 3)]
    assert sum(shares, []) == utts and [len(s) for s in shares] == [2, 2, 3]
    assert job_share(utts[:1], 1, 3) == [] and job_share(utts[:1], 3, 3) == ["0"]
    assert frame_labels([1, 2, 3], 2, 160).tolist() == [1, 2]
    assert frame_labels([1, 2, 3], 5, 160).tolist() == [1, 2, 3, 3, 3]
    assert frame_labels([4, 5], 330, 1).tolist() == [4] * 160 + [5] * 170
    with pytest.raises(ScpcError):
        frame_labels([1], 3, 7)


@pytest.mark.slow
def test_make_feats_end_to_end(small, tmp_path):
    out = tmp_path / "fbank"
    script = ROOT / "steps" / "make_feats.sh"
    args = ["--nj", "2", "--frontend", "conf/feats/fbank-41.json", small, out]
    proc = run_script(script, *args)
    assert "with 2 jobs" in proc.stdout
    assert len(list((out / "feat").iterdir())) == 5 and (out / ".complete").exists()
    log = (out / "log" / "make_feats.2.log").read_text()
    assert "--job 2 --num-jobs 2" in log.splitlines()[0] and "# Ended (code 0)" in log
    assert "already complete" in run_script(script, *args).stdout
    proc = run_script(script, "--frontend", "conf/feats/raw.json", small, out, check=False)
    assert proc.returncode == 1 and "another front-end" in proc.stderr
    assert "--frontend" in run_script(script, "--help").stdout


def test_shipped_frontend_json_is_canonical_in_feat_dirs(small, tmp_path):
    feats("--frontend", FEATS / "raw.json", small, tmp_path / "r")
    text = (tmp_path / "r" / "frontend.json").read_text()
    assert json.loads(text) == {"name": "raw"} and text.endswith("\n")
