"""Faults a cluster run meets: two writers of one experiment, a launcher killed outright, a NaN
mid-run, a full disk, bad options and configs, truncated audio and CRLF tables. Each is one
line naming the problem, and nothing already written is lost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import test_train
import torch
from conftest import ROOT, run_script, start_script, training_started, wait_for

from scpc.audio import read_audio
from scpc.config import DEFAULTS, merge
from scpc.data.datadir import read_table
from scpc.errors import ScpcError
from scpc.io import atomic_write, is_temp, save_torch
from scpc.locks import ExperimentLock
from scpc.train.loop import Trainer

feats = test_train.feats  # fixture: raw feature dirs (16 training, 8 validation utterances)
write_config = test_train.write_config


# ---------------------------------------------------------------------------- locks


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with ExperimentLock(tmp_path, "scpc-train"):
        holder = json.loads((tmp_path / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(ScpcError, match=rf"in use by scpc-train \(pid {os.getpid()} on "):
            ExperimentLock(tmp_path, "scpc-superb train").acquire()
        with ExperimentLock(tmp_path, "scpc-a2r", ".lock.2"):  # a job's own share
            pass
    assert not (tmp_path / ".lock").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no link source left behind


def test_a_lock_whose_process_is_gone_is_taken_over_and_stale_temps_go(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = {"host": socket.gethostname(), "pid": dead.pid, "started": 0, "command": "scpc-train"}
    (tmp_path / ".lock").write_text(json.dumps(info))
    (tmp_path / "sub").mkdir()
    left = [tmp_path / ".last.scpc-tmp.abc123.ckpt", tmp_path / "sub" / ".x.pt.scpc-tmp.q.tmp"]
    for p in left:
        p.write_text("half")
    (tmp_path / ".hidden").write_text("the user's")  # not ours: kept
    with ExperimentLock(tmp_path, "scpc-train"):
        pass
    err = capsys.readouterr().err
    assert f"taking over the lock of scpc-train (pid {dead.pid}" in err
    assert "removed 2 temporary files of an interrupted writer" in err
    assert not any(p.exists() for p in left) and (tmp_path / ".hidden").exists()


def test_a_lock_of_another_host_is_respected(tmp_path):
    info = {"host": "node17", "pid": 1234, "started": 0, "command": "scpc-train", "job": None}
    (tmp_path / ".lock").write_text(json.dumps(info))
    with pytest.raises(ScpcError, match="in use by scpc-train \\(pid 1234 on node17"):
        ExperimentLock(tmp_path, "scpc-train").acquire()


def test_atomic_writers_use_names_the_lock_holder_can_clean(tmp_path):
    seen = []
    with atomic_write(tmp_path / "a.txt") as f:
        seen += [p.name for p in tmp_path.iterdir()]
        f.write("x")
    assert len(seen) == 1 and is_temp(seen[0]) and not is_temp("a.txt")


@pytest.mark.slow
def test_two_trainers_on_one_experiment(tmp_path, feats):
    cfg = write_config(tmp_path / "exp" / "model.yaml", max_epochs=30)
    first = start_script(ROOT / ".venv/bin/scpc-train", "--quiet", cfg, *feats)
    try:
        wait_for(training_started(tmp_path / "exp"), first, "the first trainer")
        second = run_script(".venv/bin/scpc-train", "--quiet", cfg, *feats, check=False)
        assert second.returncode == 1
        assert f"in use by scpc-train (pid {first.pid} on {socket.gethostname()}" in second.stderr
        assert second.stderr.count("\n") == 1  # one line, no traceback
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate()
    rows = (tmp_path / "exp" / "metrics.csv").read_text().splitlines()
    assert len(rows) == len(set(rows))  # nothing written twice
    assert not (tmp_path / "exp" / ".lock").exists()


@pytest.mark.slow
def test_a_sigkilled_launcher_takes_its_trainer_with_it(tmp_path, feats):
    exp = tmp_path / "exp"
    cfg = write_config(exp / "model.yaml", max_epochs=30)
    launcher = start_script(
        ROOT / "utils" / "run_local.sh", exp / "log" / "train.log",
        ROOT / ".venv/bin/scpc-train", "--quiet", cfg, *feats,
    )  # fmt: skip
    wait_for(training_started(exp), launcher, "training under run_local.sh")
    launcher.kill()  # SIGKILL: it cannot pass anything on
    launcher.wait()
    deadline = time.time() + 60
    while (exp / ".lock").exists() and time.time() < deadline:  # the trainer's, until it ends
        time.sleep(0.1)
    assert not (exp / ".lock").exists(), "the trainer outlived its launcher"
    log = (exp / "log" / "train.log").read_text()
    assert "the launcher (pid" in log and "is gone; stopping" in log
    assert "SIGTERM received" in (exp / "train.log").read_text()
    state = torch.load(exp / "last.ckpt", weights_only=True)
    assert state["progress"]["step"] >= 1  # saved on the way out: a re-run resumes from it


# ---------------------------------------------------------------------------- non-finite steps


def nan_at(trainer, bad):
    """Make the loss of the training batches numbered ``bad`` (0-based, over the run) NaN."""
    forward, seen = trainer._forward, [0]

    def poisoned(*args, **kwargs):
        out = forward(*args, **kwargs)
        if trainer.model.training:  # not validation
            if seen[0] in bad:
                out = {**out, "loss": out["loss"] * float("nan")}
            seen[0] += 1
        return out

    trainer._forward = poisoned


def tiny_trainer(tmp_path, feats, name, **training):
    cfg = merge(
        DEFAULTS, {**test_train.TINY, "training": {**test_train.TINY["training"], **training}}, "t"
    )
    return Trainer(cfg, *feats, tmp_path / name, quiet=True)


@pytest.mark.slow
def test_a_nan_step_is_skipped_logged_with_its_utterances_and_training_goes_on(tmp_path, feats):
    t = tiny_trainer(tmp_path, feats, "exp", max_epochs=1)
    nan_at(t, {2})  # the third of the epoch's 4 batches
    assert t.fit() == tmp_path / "exp" / "best.ckpt"
    log = (tmp_path / "exp" / "train.log").read_text()
    line = next(x for x in log.splitlines() if "non-finite" in x)
    assert "step 2: non-finite loss or gradient; step skipped (1 in a row of at most 10)" in line
    utts = line.split("utterances: ")[1].split(", ")
    assert len(utts) == 4 and set(utts) <= set(t.train_ds.uttids)  # the batch's
    rows = (tmp_path / "exp" / "metrics.csv").read_text()
    assert "nan" not in rows.lower()
    state = torch.load(tmp_path / "exp" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert state["progress"]["step"] == 3  # 4 batches, one step skipped


def test_consecutive_nan_steps_stop_training_with_the_last_finite_state(tmp_path, feats):
    t = tiny_trainer(tmp_path, feats, "exp", max_epochs=2, max_nonfinite_steps=3)
    nan_at(t, set(range(2, 100)))  # every batch from the third on
    with pytest.raises(ScpcError, match=r"3 training steps in a row had a non-finite loss .* "
                       r"utterances .*/last.ckpt holds the last finite state"):  # fmt: skip
        t.fit()
    state = torch.load(tmp_path / "exp" / "last.ckpt", weights_only=True)
    assert state["progress"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# ---------------------------------------------------------------------------- configs, options


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("learning_rate", -0.1, "training.learning_rate must be a positive finite number"),
        ("learning_rate", ".nan", "training.learning_rate must be a positive finite number"),
        ("batch_size", 0, "training.batch_size must be at least 1"),
        ("max_epochs", 0, "training.max_epochs must be at least 1"),
        ("max_nonfinite_steps", 0, "training.max_nonfinite_steps must be at least 1"),
    ],
)
def test_config_values_out_of_range_fail_the_check(tmp_path, key, value, message):
    path = tmp_path / "model.yaml"
    path.write_text(f"name: x\ntraining:\n  {key}: {value}\n")
    proc = run_script(".venv/bin/scpc-config", "check", path, check=False)
    assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1


def test_a_stage_that_is_not_a_number_is_refused(tmp_path):
    proc = run_script(ROOT / "run.sh", "--stage", "abc", check=False)
    assert proc.returncode == 1 and "--stage takes an integer, got 'abc'" in proc.stderr


# ---------------------------------------------------------------------------- bad input files


def test_a_truncated_wav_is_an_error_naming_the_file(tmp_path):
    x = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    sf.write(tmp_path / "ok.wav", x, 16000, subtype="PCM_16")
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:-10000])
    assert len(read_audio(str(tmp_path / "ok.wav"))) == 16000
    with pytest.raises(ScpcError, match=r"cut.wav: truncated WAV: its header declares 32000 bytes "
                       r"of audio, the file holds 22000"):  # fmt: skip
        read_audio(str(tmp_path / "cut.wav"))


def test_crlf_tables_are_refused_alike(tmp_path, mini_data):
    d = tmp_path / "crlf"
    d.mkdir()
    for f in ("wav.scp", "utt2spk", "spk2utt", "text"):
        (d / f).write_bytes((mini_data / "dev" / f).read_bytes().replace(b"\n", b"\r\n"))
    want = "wav.scp:1: Windows (CRLF) line ending"
    with pytest.raises(ScpcError, match=want.replace("(", r"\(").replace(")", r"\)")):
        read_table(d / "wav.scp")
    for cmd in ([ROOT / "utils" / "validate_data_dir.sh", d],
                [ROOT / "steps" / "make_feats.sh", d, tmp_path / "feats"]):  # fmt: skip
        proc = run_script(*cmd, check=False)
        assert proc.returncode == 1 and "Windows (CRLF) line ending" in proc.stderr, cmd
    assert not (tmp_path / "feats").exists()  # refused before any job started


# ---------------------------------------------------------------------------- full disks


def tmpfs(path, options):
    """A tmpfs mounted at ``path`` for the test (root only: skipped elsewhere); unmounted after."""
    path.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
    ):
        pytest.skip("mounting a tmpfs needs root")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 kB file system, soon full."""
    yield from tmpfs(tmp_path / "small", "size=256k")


def test_a_full_disk_during_a_checkpoint_save_keeps_the_old_one(small_disk):
    path = small_disk / "last.ckpt"
    save_torch({"w": torch.zeros(1000)}, path)
    before = path.read_bytes()
    with pytest.raises(ScpcError, match=r"last.ckpt: no space left on its file system after "):
        save_torch({"w": torch.zeros(200000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in small_disk.iterdir()] == ["last.ckpt"]  # no temporary file


@pytest.mark.slow
def test_a_full_disk_during_scpc_a2r_is_one_line(small_disk, mini_data, tmp_path):
    ckpt = tmp_path / "fb.ckpt"
    run_script(".venv/bin/scpc-init", "frontend", ROOT / "conf" / "feats" / "fbank-80.json", ckpt)
    proc = run_script(".venv/bin/scpc-a2r", "--in-map", mini_data / "dev" / "wav.scp", ckpt,
                      small_disk / "reps", check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "no space left on its file system" in proc.stderr and "Traceback" not in proc.stderr
    files = list((small_disk / "reps").iterdir())
    assert files and not any(is_temp(p.name) for p in files)  # whole files only
    for p in files:
        assert torch.load(p).shape[1] == 80


@pytest.mark.slow
def test_make_feats_names_each_bad_file_goes_on_and_fails_at_the_end(tmp_path, mini_data):
    d = tmp_path / "data"
    utts = list(read_table(mini_data / "dev" / "utt2spk"))[:3]
    from scpc.data.datadir import copy_filtered

    copy_filtered(mini_data / "dev", d, utts)
    x = np.full(8000, 0.1, dtype=np.float32)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    sf.write(tmp_path / "ok.wav", np.zeros(8000, np.float32), 16000, subtype="PCM_16")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "ok.wav").read_bytes()[:-4000])
    extra = {"zz-bad-nan": tmp_path / "nan.wav", "zz-bad-cut": tmp_path / "cut.wav"}
    for name, table in (("wav.scp", extra), ("utt2spk", dict.fromkeys(extra, "zz"))):
        rows = dict(read_table(d / name)) | {k: str(v) for k, v in table.items()}
        (d / name).write_text("".join(f"{k} {v}\n" for k, v in sorted(rows.items())))
    (d / "spk2utt").write_text((d / "spk2utt").read_text() + "zz zz-bad-cut zz-bad-nan\n")
    (d / "text").write_text((d / "text").read_text() + "zz-bad-cut A\nzz-bad-nan B\n")
    (d / "ali.txt").unlink()
    for f in ("utt2dur", "utt2num_samples", "abx.item", "spk2gender"):
        (d / f).unlink(missing_ok=True)
    out = tmp_path / "feats"
    proc = run_script(ROOT / "steps" / "make_feats.sh", "--nj", "1", d, out, check=False)
    assert proc.returncode == 1
    log = (out / "log" / "make_feats.1.log").read_text()
    assert "zz-bad-cut: " in log and "truncated WAV" in log
    assert "zz-bad-nan: " in log and "NaN or infinite samples" in log
    assert "2 of 5 utterances could not be computed" in log
    assert sorted(p.stem for p in (out / "feat").iterdir()) == sorted(utts)  # the rest done
    assert not (out / ".complete").exists()


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system (root ignores a directory's mode bits, not this)."""
    yield from tmpfs(tmp_path / "ro", "size=64k,ro")


@pytest.mark.slow
def test_a_read_only_output_dir_is_one_line(read_only_dir, mini_data, tmp_path):
    ckpt = tmp_path / "fb.ckpt"
    run_script(".venv/bin/scpc-init", "frontend", ROOT / "conf" / "feats" / "fbank-41.json", ckpt)
    proc = run_script(".venv/bin/scpc-a2r", "--in-map", mini_data / "dev" / "wav.scp", ckpt,
                      read_only_dir / "reps", check=False)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Read-only file system" in proc.stderr


# ---------------------------------------------------------------------------- long inputs


@pytest.mark.parametrize("norm", ["channel", "none", "batch"])
def test_a_long_input_is_encoded_in_windows_as_in_one_pass(norm, monkeypatch):
    from scpc.models.encoders import ConvEncoder

    torch.manual_seed(0)
    enc = ConvEncoder(1, 16, norm).eval()
    x, lens = torch.randn(3, 50000, 1), torch.tensor([50000, 33333, 7])
    with torch.inference_mode():
        one = enc(x, lens)  # 312 frames: under the window, one pass
        monkeypatch.setattr(ConvEncoder, "WINDOW_FRAMES", 37)  # 9 windows, uneven last one
        windowed = enc(x, lens)
    assert torch.equal(windowed.lens, one.lens) and windowed.output.shape == one.output.shape
    torch.testing.assert_close(windowed.output, one.output, atol=1e-5, rtol=1e-5)
    assert (windowed.output[2, 1:] == 0).all()  # padding frames zero, as in one pass


def test_windows_apply_to_inference_only_and_frame_local_norms(monkeypatch):
    from scpc.models.encoders import ConvEncoder

    monkeypatch.setattr(ConvEncoder, "WINDOW_FRAMES", 10)
    calls = []
    monkeypatch.setattr(ConvEncoder, "forward_windowed", lambda *a: calls.append(a) or 0)
    x, lens = torch.randn(1, 8000, 1), torch.tensor([8000])
    ConvEncoder(1, 8, "instance").eval()(x, lens)  # utterance statistics: one pass
    ConvEncoder(1, 8, "channel").train()(x, lens)  # training: one pass (gradients)
    assert calls == []
    with torch.no_grad():
        ConvEncoder(1, 8, "channel").eval()(x, lens)
    assert len(calls) == 1


def test_the_last_feature_job_removes_what_killed_jobs_left(tmp_path, mini_data, capsys):
    from scpc.data.datadir import copy_filtered
    from scpc.data.featdir import compute_feat_dir
    from scpc.frontend import load_frontend_config

    d = tmp_path / "data"
    copy_filtered(mini_data / "dev", d, list(read_table(mini_data / "dev" / "utt2spk"))[:2])
    fe = load_frontend_config(ROOT / "conf" / "feats" / "fbank-41.json")
    compute_feat_dir(d, tmp_path / "f", fe, job=1, num_jobs=2)
    stale = tmp_path / "f" / "feat" / ".x.scpc-tmp.abcd.pt"  # as a killed job leaves one
    stale.write_bytes(b"half")
    compute_feat_dir(d, tmp_path / "f", fe)  # the final call, after every job
    assert not stale.exists() and (tmp_path / "f" / ".complete").exists()
    assert "removed 1 temporary files of interrupted jobs" in capsys.readouterr().err
