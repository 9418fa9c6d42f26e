"""run.sh end to end on the mini corpus with a tiny model: data, features, frozen config,
training, PCA, extraction and the summary; then a re-run that skips finished stages."""

import pytest
import torch
from conftest import ROOT, run_script

from scpc import config as cfg

TINY = {
    "name": "tiny",
    "feat_type": "raw-norm",
    "frontend": {"name": "raw", "normalize": True},
    "conv": {"output_size": 16, "norm_type": "channel"},
    "recur": {"output_size": 16, "num_layers": 1, "recurrent_type": "gru"},
    "training": {
        "batch_size": 8,
        "max_epochs": 2,
        "max_steps": 6,
        "keep_checkpoint_every_epochs": 1,
        "chunking": {"policy": "fixed", "lobe_size": 4799, "max_chunks": 8},
        "cpc_loss": {"prediction_steps": 4, "negative_samples": 16},
    },
}


@pytest.mark.slow
def test_run_sh_end_to_end(tmp_path):
    exp = tmp_path / "exp"
    em = exp / "tiny" / "version_3"
    em.mkdir(parents=True)
    (em / "model.yaml").write_text(cfg.dump(cfg.merge(cfg.DEFAULTS, TINY, "test")))
    args = ["--model", "tiny", "--version", "3", "--datadir", tmp_path / "data"]
    args += ["--expdir", exp, "--pca-dims", "4"]
    proc = run_script(ROOT / "run.sh", *args, "--abx-baselines", "fbank random")
    for stage in range(7):
        assert f"Stage {stage}:" in proc.stdout
    # stage 6: the ABX table of dev and test, and the kept checkpoint's learning curve
    rows = [r.split() for r in proc.stdout.splitlines() if r.startswith("tiny ")]
    assert [r[:2] for r in rows if r[1] in ("dev", "test")] == [["tiny", "dev"], ["tiny", "test"]]
    assert [r[:2] for r in rows if r[1] not in ("dev", "test")] == [
        ["tiny", "0"],
        ["tiny", "1"],
    ] * 2
    assert proc.stdout.count("(both contexts)") == 2  # the curve's verdict on dev and on test
    for f in ("best.ckpt", "last.ckpt", "metrics.csv", "curves.png", "pca_4.pt"):
        assert (em / f).is_file(), f
    # features computed on the fly from the data dir: no feature dirs, exact lengths only
    assert not (tmp_path / "data" / "mini" / "raw-norm").exists()
    assert (tmp_path / "data" / "mini" / "train" / "utt2num_samples").is_file()
    reps = sorted((em / "reps" / "test").glob("*.pt"))
    assert len(reps) == 72
    x = torch.load(reps[0], weights_only=True)
    assert x.dtype == torch.float32 and x.shape[1] == 16
    assert "downsampling_factor" in proc.stdout and str(em / "reps" / "test") in proc.stdout
    rows = (em / "metrics.csv").read_text().splitlines()
    assert sum(r.startswith("valid") for r in rows) == 1  # max_steps stopped it in epoch 0

    again = run_script(ROOT / "run.sh", *args, "--stage", "1", "--abx-baselines", "fbank random")
    assert "training" in again.stdout and "best.ckpt exists" in again.stdout
    assert "scpc-a2r" not in again.stderr  # every score exists: stage 6 prints the tables

    # ABX of the model with two reference rows, on the dev part
    zrc = [ROOT / "local" / "zrc_run.sh", "--model", "tiny", "--version", "3"]
    zrc += ["--datadir", tmp_path / "data", "--expdir", exp, "--parts", "dev"]
    proc = run_script(*zrc, "--baselines", "fbank random")
    table = [r for r in map(str.split, proc.stdout.splitlines()) if len(r) == 6 and r[1] == "dev"]
    assert [row[:2] for row in table] == [["tiny", "dev"], ["fbank", "dev"], ["random", "dev"]]
    assert all(0 <= float(x) <= 100 for row in table for x in row[2:])
    scores = (em / "abx" / "mini" / "scores.csv").read_text().splitlines()
    assert len(scores) == 1 + 3 * 4
    rerun = run_script(*zrc, "--baselines", "fbank random")  # scores exist: table only
    assert (
        "scpc-a2r" not in rerun.stderr
        and rerun.stdout.splitlines()[-5:] == proc.stdout.splitlines()[-5:]
    )
    table_only = run_script(*zrc, "--baselines", "fbank random", "--stage", "3")
    assert table_only.stdout.splitlines()[-5:] == proc.stdout.splitlines()[-5:]
    # the kept checkpoint's learning curve from the untrained model (random), beside fbank
    curve = run_script(*zrc, "--baselines", "fbank random", "--checkpoints", "true")
    out = em / "abx" / "mini" / "learning_curve"
    assert (em / "abx" / "mini" / "tiny.epoch1.dev.csv").is_file()
    rows = [r.split() for r in (out / "table.txt").read_text().splitlines()]
    assert [r[:3] for r in rows if r and r[0] in ("tiny", "fbank")] == [
        ["tiny", "0", "0.0"],
        ["tiny", "1", rows[3][2]],
        ["fbank", "-", "-"],
    ]
    assert "fbank across speakers (both contexts)" in curve.stdout
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "learning_curve.csv").read_text().splitlines()) == 1 + 3 * 4
    (em / "abx" / "mini" / "fbank.dev.csv").unlink()
    no_scoring = run_script(*zrc, "--baselines", "fbank random", "--stop-stage", "2")
    assert "ABX error" not in no_scoring.stdout  # stage 3 (the table) not run
    assert (em / "abx" / "mini" / "fbank.dev.csv").is_file()  # stage 2 scored it again


def test_run_sh_refuses_unknown_model(tmp_path):
    proc = run_script(ROOT / "run.sh", "--model", "nonesuch", "--expdir", tmp_path, check=False)
    assert proc.returncode == 1
    assert "no conf/model.nonesuch.yaml" in proc.stderr


@pytest.mark.slow
def test_every_conf_model_freezes(tmp_path):
    """Every shipped config is valid, names itself, and builds a model of the reference's size."""
    from scpc.train.model import PretrainModel

    sizes = {  # inference parameters in the reference (scpc.md §4.3)
        "cpc.csa": 2.105e6,
        "cpc.small": 2.37e6,
        "cpc.deft": 5.84e6,
        "cpc.cconv8": 2.36e6,
        "bestrq.csa": 0.81e6,
    }
    names = sorted(p.name[6:-5] for p in (ROOT / "conf").glob("model.*.yaml"))
    assert {"cpc.mini", "cpc.small", "cpc.deft", "cpc.conv", "fbank", "bestrq.csa"} <= set(names)
    for w in (2, 4, 8, 16, 32, 64, 128):
        assert {f"cpc.csa{w}", f"cpc.cconv{w}", f"bestrq.csa{w}"} <= set(names)
    for name in names:
        out = tmp_path / name / "model.yaml"
        run_script(
            ".venv/bin/scpc-config",
            "freeze",
            ROOT / "conf" / f"model.{name}.yaml",
            ROOT / "conf" / "feats",
            out,
        )
        c = cfg.load(out)
        assert c["name"] == name and c["frontend"]["name"] in ("raw", "stft")
        if name in sizes:
            feat = {"raw": 1, "fbank-80": 80, "fbank-41": 41}[c["feat_type"]]
            n = sum(p.numel() for p in PretrainModel(c, feat).encoder().parameters())
            assert n == pytest.approx(sizes[name], rel=0.01), name
