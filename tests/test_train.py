"""scpc-train: a real (tiny) training run, exact resume after SIGKILL, DDP == one process,
best.ckpt round trip, config errors."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from conftest import (
    ROOT,
    kill_once_saved,
    metric_rows,
    run_script,
    tb_scalars,
    write_training_config,
)

from scpc.audio import read_audio
from scpc.config import DEFAULTS, merge
from scpc.data.datadir import read_table
from scpc.errors import ScpcError
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.train.loop import Trainer

TINY = {
    "name": "tiny",
    "frontend": {"name": "raw"},
    "conv": {"output_size": 32, "norm_type": "channel"},
    "recur": {"output_size": 32, "num_layers": 1, "recurrent_type": "lstm"},
    "training": {
        "batch_size": 4,
        "max_epochs": 2,
        "log_every_steps": 1,
        "checkpoint_every_steps": 2,
        "chunking": {"policy": "none"},
        "cpc_loss": {"prediction_steps": 3, "negative_samples": 8, "negatives": "utterance"},
    },
}


def make_raw_feats(data_dir, out, count, seconds=(0.6, 1.4)):
    """A raw feature dir of ``count`` cropped utterances of varied length."""
    (out / "feat").mkdir(parents=True)
    (out / "ext").mkdir()
    wavs = list(read_audio_table(data_dir))[:count]
    spk = read_table(data_dir / "utt2spk")
    g = torch.Generator().manual_seed(0)
    for utt, entry in wavs:
        x = torch.from_numpy(read_audio(entry))
        n = int(16000 * (seconds[0] + (seconds[1] - seconds[0]) * torch.rand(1, generator=g)))
        torch.save(x[:n].unsqueeze(-1).clone(), out / "feat" / f"{utt}.pt")
    (out / "ext" / "utt2spk").write_text("".join(f"{u} {spk[u]}\n" for u, _ in wavs))
    (out / "frontend.json").write_text(json.dumps({"name": "raw"}))
    return out


def read_audio_table(data_dir):
    return read_table(data_dir / "wav.scp").items()


@pytest.fixture(scope="module")
def feats(mini_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("feats")
    return (
        make_raw_feats(mini_data / "train", root / "train", 16),
        make_raw_feats(mini_data / "dev", root / "dev", 8),
    )


def write_config(path, **training):
    return write_training_config(path, TINY, **training)


losses = metric_rows  # split, epoch, step, loss, accuracy


def train(tmp_path, feats, name="exp", **training):
    cfg = write_config(tmp_path / name / "model.yaml", **training)
    proc = run_script(".venv/bin/scpc-train", "--quiet", cfg, *feats)
    return tmp_path / name, proc


@pytest.mark.slow
def test_training_writes_outputs_and_is_reproducible(tmp_path, feats):
    exp, proc = train(tmp_path, feats)
    for f in ("best.ckpt", "last.ckpt", "metrics.csv", "curves.png", "train.log"):
        assert (exp / f).is_file(), f
    assert (exp / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = losses(exp)
    assert [r[0] for r in rows].count("valid") == 2
    assert "best.ckpt" in proc.stderr
    # TensorBoard: the same rows, read back with tensorboard's reader
    train_tb, valid_tb = tb_scalars(exp / "tb" / "train"), tb_scalars(exp / "tb" / "valid")
    assert set(train_tb) == {"loss", "accuracy", "lr", "audio_per_s"}
    assert [(s, pytest.approx(float(v), rel=1e-5)) for s, v in train_tb["loss"]] == [
        (int(r[2]), float(r[3])) for r in rows if r[0] == "train"
    ]
    assert [s for s, _ in valid_tb["loss"]] == [int(r[2]) for r in rows if r[0] == "valid"]
    again, _ = train(tmp_path, feats, name="again")
    assert losses(again) == rows  # same seed, same losses
    other, _ = train(tmp_path, feats, name="other", seed=1)
    assert losses(other) != rows


@pytest.mark.slow
def test_best_checkpoint_is_lowest_validation_and_round_trips(tmp_path, feats):
    exp, _ = train(tmp_path, feats, max_epochs=3)
    vals = [float(r[3]) for r in losses(exp) if r[0] == "valid"]
    model = load_inference_checkpoint(exp / "best.ckpt")
    assert model.provenance["val_loss"] == pytest.approx(min(vals), rel=1e-5)
    assert model.provenance["epoch"] == vals.index(min(vals))
    # the checkpoint's encoder reproduces the trained weights exactly
    state = torch.load(exp / "last.ckpt", weights_only=True)
    if vals.index(min(vals)) == len(vals) - 1:
        for k, v in model.encoder.state_dict().items():
            latent_or_context = (
                "latent." + k.split(".", 2)[2]
                if k.startswith("encoders.0")
                else "context." + k.split(".", 2)[2]
            )
            assert torch.equal(v, state["model"][latent_or_context])
    x = torch.randn(2, 4000) * 0.1
    out = model(x, torch.tensor([4000, 2500]))
    assert out.output.shape == (2, 25, 32)
    assert out.lens.tolist() == [25, 15]


@pytest.mark.slow
def test_kept_checkpoints_carry_epochs_and_training_time(tmp_path, feats):
    exp, _ = train(tmp_path, feats, max_epochs=4, keep_checkpoint_every_epochs=2)
    kept = sorted(p.name for p in (exp / "checkpoints").iterdir())
    assert kept == ["epoch2.ckpt", "epoch4.ckpt"]
    prov = [load_inference_checkpoint(exp / "checkpoints" / k).provenance for k in kept]
    vals = [float(r[3]) for r in losses(exp) if r[0] == "valid"]
    assert [p["epoch"] for p in prov] == [1, 3]  # 0-based like best.ckpt's
    assert [p["val_loss"] for p in prov] == pytest.approx([vals[1], vals[3]], rel=1e-5)
    assert 0 < prov[0]["train_seconds"] < prov[1]["train_seconds"]
    last = torch.load(exp / "last.ckpt", weights_only=True)
    assert last["progress"]["train_seconds"] >= prov[1]["train_seconds"]
    # the last kept checkpoint is the final model
    model = load_inference_checkpoint(exp / "checkpoints" / "epoch4.ckpt")
    for k, v in model.encoder.state_dict().items():
        part = "latent." if k.startswith("encoders.0") else "context."
        assert torch.equal(v, last["model"][part + k.split(".", 2)[2]])
    with pytest.raises(ScpcError, match="keep_checkpoint_every_epochs must be 0"):
        Trainer(merge(DEFAULTS, {**TINY, "training": {"keep_checkpoint_every_epochs": -1}}, "t"),
                *feats, tmp_path / "neg")  # fmt: skip


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, feats):
    full, _ = train(tmp_path, feats, name="full", max_epochs=3)
    cfg = write_config(tmp_path / "killed" / "model.yaml", max_epochs=3)
    last = tmp_path / "killed" / "last.ckpt"
    kill_once_saved([ROOT / ".venv/bin/scpc-train", "--quiet", cfg, *feats], last)
    state = torch.load(last, weights_only=True)
    assert state["progress"]["step"] < 12
    run_script(".venv/bin/scpc-train", "--quiet", cfg, *feats)
    assert losses(tmp_path / "killed") == losses(full)
    # the resumed run's TensorBoard events read as the uninterrupted run's
    for split in ("train", "valid"):
        got, want = (tb_scalars(e / "tb" / split) for e in (tmp_path / "killed", full))
        for tag in ("loss", "accuracy"):  # audio_per_s is a timing: not repeatable
            assert got[tag] == want[tag], (split, tag)
    a = torch.load(full / "last.ckpt", weights_only=True)["model"]
    b = torch.load(last, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigterm_saves_state_and_resumed_run_matches_uninterrupted(tmp_path, feats):
    full, _ = train(tmp_path, feats, name="full", max_epochs=3)
    # no periodic checkpoint inside an epoch: the state saved mid-epoch is the signal's
    cfg = write_config(tmp_path / "stopped" / "model.yaml", max_epochs=3, checkpoint_every_steps=99)
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/scpc-train"), "--quiet", str(cfg), *map(str, feats)],
        env=dict(os.environ, SCPC_QUIET="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "stopped" / "metrics.csv"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, f"not stopped by the signal: {err}"
    state = torch.load(tmp_path / "stopped" / "last.ckpt", weights_only=True)
    step = state["progress"]["step"]
    assert 1 <= step < 12
    log = (tmp_path / "stopped" / "train.log").read_text()
    assert f"SIGTERM received: stopped at epoch {state['progress']['epoch']}, step {step}" in log
    assert "last.ckpt saved" in err
    run_script(".venv/bin/scpc-train", "--quiet", cfg, *feats)
    assert (
        f"resuming at epoch {state['progress']['epoch']}, step {step}"
        in (tmp_path / "stopped" / "train.log").read_text()
    )
    assert losses(tmp_path / "stopped") == losses(full)
    a = torch.load(full / "last.ckpt", weights_only=True)["model"]
    b = torch.load(tmp_path / "stopped" / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_process_ddp_through_the_local_launcher_equals_one_process(tmp_path, feats):
    one, _ = train(tmp_path, feats, name="one", max_epochs=1)
    cfg = write_config(tmp_path / "two" / "model.yaml", max_epochs=1, batch_size=2)
    run_script(
        ROOT / "utils" / "run_local.sh", "--procs-per-node", "2", "--num-threads", "1",
        tmp_path / "two" / "log" / "train.log", "scpc-train", "--quiet", cfg, *feats,
    )  # fmt: skip
    assert "2 process(es)" in (tmp_path / "two" / "train.log").read_text()
    a = torch.load(one / "last.ckpt", weights_only=True)["model"]
    b = torch.load(tmp_path / "two" / "last.ckpt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    one_rows, two_rows = losses(one), losses(tmp_path / "two")
    assert [r[:3] for r in one_rows] == [r[:3] for r in two_rows]


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu(tmp_path, feats):
    """The AMP path runs in CI: bf16 autocast on CPU, weights kept in float32."""
    plain, _ = train(tmp_path, feats, "plain", max_epochs=1)
    amp, _ = train(tmp_path, feats, "amp", max_epochs=1, amp="bf16")
    a, b = losses(plain), losses(amp)
    assert len(a) == len(b) > 2 and all(math.isfinite(float(r[3])) for r in b)
    assert a[0][3] != b[0][3] and float(b[0][3]) == pytest.approx(float(a[0][3]), rel=0.05)
    state = torch.load(amp / "last.ckpt", weights_only=True)["model"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())


@pytest.mark.slow
def test_unknown_config_key_is_one_line_error(tmp_path, feats):
    cfg = tmp_path / "model.yaml"
    cfg.write_text("training:\n  learning_rat: 0.1\n")
    proc = run_script(".venv/bin/scpc-train", cfg, *feats, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"scpc-train: {cfg}: unknown config key training.learning_rat "
        "(did you mean training.learning_rate?)"
    ]


def test_mismatched_frontend_refused(tmp_path, feats):
    c = json.loads(json.dumps(TINY))
    c["frontend"] = {"name": "stft"}
    with pytest.raises(ScpcError, match="does not match the model's front-end"):
        Trainer(merge(DEFAULTS, c, "test"), *feats, tmp_path)


@pytest.mark.slow
def test_changed_config_refuses_old_training_state(tmp_path, feats):
    exp, _ = train(tmp_path, feats, max_epochs=1)
    write_config(exp / "model.yaml", max_epochs=1, learning_rate=0.1)
    proc = run_script(".venv/bin/scpc-train", exp / "model.yaml", *feats, check=False)
    assert proc.returncode == 1
    assert "saved with a different model.yaml" in proc.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


@pytest.mark.slow
def test_bestrq_trains_on_filter_banks_and_extracts(tmp_path, mini_data):
    from scpc.data.featdir import compute_feat_dir
    from scpc.frontend import load_frontend_config

    fbank = load_frontend_config(ROOT / "conf" / "feats" / "fbank-80.json")
    dirs = []
    for part in ("dev", "test"):
        compute_feat_dir(mini_data / part, tmp_path / part, fbank)
        dirs.append(tmp_path / part)
    c = {
        "name": "rq",
        "feat_type": "fbank-80",
        "frontend": fbank,
        "latent_type": "ff",
        "context_type": "csa",
        "ff": {"output_size": 32},
        "csa": {"num_layers": 1, "num_heads": 4, "dim_feedforward": 64, "max_width": 16},
        "training": {
            "batch_size": 8,
            "max_epochs": 1,
            "chunking": {"policy": "none"},
            "loss_type": "best-rq",
            "best_rq_loss": {
                "mask_prob": 0.05,
                "mask_width": 5,
                "codebook_size": 64,
                "prediction_type": "csa",
            },
        },
    }
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "model.yaml").write_text(yaml.safe_dump(c))
    run_script(".venv/bin/scpc-train", "--quiet", tmp_path / "exp" / "model.yaml", *dirs)
    vals = [r for r in losses(tmp_path / "exp") if r[0] == "valid"]
    assert len(vals) == 1 and 0 < float(vals[0][3]) < 10
    model = load_inference_checkpoint(tmp_path / "exp" / "best.ckpt")
    assert model.downsampling_factor == 160 and model.output_size == 32
    out = model(torch.randn(1, 16000) * 0.1, torch.tensor([16000]))
    assert out.output.shape == (1, (16000 + 80) // 160, 32)


def test_speaker_embedding_uses_training_speakers_only(tmp_path, mini_data):
    """Speaker ids come from the training set's utt2spk (1..S, stored with best.ckpt's
    provenance); validation utterances of unseen speakers get id 0, which adds nothing."""
    root = tmp_path / "f"
    train = make_raw_feats(mini_data / "train", root / "train", 4)
    valid = make_raw_feats(mini_data / "dev", root / "dev", 8)  # more utterances than train
    c = json.loads(json.dumps(TINY))
    c["training"].update(batch_size=2, max_epochs=1)
    c["training"]["cpc_loss"]["speaker_embedding"] = True
    trainer = Trainer(merge(DEFAULTS, c, "test"), train, valid, tmp_path / "exp", quiet=True)
    spk = sorted(set(read_table(train / "ext" / "utt2spk").values()))
    assert trainer.speaker_ids == {s: i + 1 for i, s in enumerate(spk)}
    assert trainer.model.objective.speakers.num_embeddings == len(spk) + 1
    trainer.fit()
    model = load_inference_checkpoint(tmp_path / "exp" / "best.ckpt")
    assert model.provenance["speakers"] == spk
