"""SUPERB end to end on a few mini-corpus utterances: every task of scpc-superb train with a
tiny random-init upstream, scpc-superb evaluate, and local/superb_run.sh / superb_lr_sweep.sh
with the filter-bank baseline."""

from __future__ import annotations

import json

import pytest
import test_superb
from conftest import ROOT, run_script, tb_scalars

from scpc.cli import superb

small_config = test_superb.small_config
small_data, tiny_ckpt = test_superb.small_data, test_superb.tiny_ckpt  # fixtures

TASK_OPTIONS = {
    "pr": {},
    "asr": {
        "task": {"project_dim": 16, "hidden": [8], "beam": 2},
        "specaug": {"enabled": True, "time_mask_width": [0, 5], "freq_mask_width": [0, 3]},
    },
    "phone_linear": {},
    "phone_1hidden": {"task": {"hidden_size": 16}},
    "phone_concat": {"task": {"concat_frames": 3}},
}


@pytest.mark.parametrize("task", sorted(TASK_OPTIONS))
def test_task_trains_scores_and_writes_its_run(task, tmp_path, small_data, tiny_ckpt, capsys):
    path = small_config(tmp_path, small_data, task, max_steps=4)
    cfg = json.loads(path.read_text())
    cfg.update(TASK_OPTIONS[task])
    path.write_text(json.dumps(cfg))
    out = tmp_path / "run"
    args = ["train", "--task", task, "--config", str(path), "--upstream", str(tiny_ckpt)]
    assert superb.main([*args, "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    r = json.loads((out / "results.json").read_text())
    metric = {"pr": "per", "asr": "wer"}.get(task, "accuracy")
    assert r["metric"] == metric and r["value"] == r["test"][metric]
    assert 0 <= r["value"] <= (100 if metric == "accuracy" else 1000)
    assert r["layers"] == [0, 1] and r["layer_weights"] != [0.5, 0.5]  # the weights learned
    # TensorBoard: training and dev rows, and the weighted sum's weights at each evaluation
    assert "loss" in tb_scalars(out / "tb" / "train") and metric in tb_scalars(out / "tb" / "dev")
    weights = tb_scalars(out / "tb" / "layer_weights")
    assert set(weights) == {"layer0", "layer1"}
    at_best = dict(weights["layer0"])[r["best_step"]]  # results.json: the dev-best head's
    assert at_best == pytest.approx(r["layer_weights"][0], abs=1e-6)
    assert (
        line
        == f"{task} tiny: {metric} {r['value']:.2f} (test; dev {r['dev'][metric]:.2f}, step {r['best_step']}, lr 0.01) {out}"
    )
    if task == "asr":
        assert "wer_beam" in r["test"] and "cer" in r["dev"]
    for f in ("metrics.csv", "curves.png", "train.log", "dev-best.ckpt", "last.ckpt"):
        assert (out / f).is_file(), f
    # a finished run is not redone; a saved probe scores the same again
    assert superb.main([*args, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == line
    assert superb.main(["evaluate", str(out / "dev-best.ckpt"), "--split", "test"]) == 0
    again = capsys.readouterr().out.strip()
    assert again.startswith(f"{task} test: {metric} {r['value']:.2f}")


@pytest.mark.slow
def test_layer_option_and_finetuning_through_the_cli(tmp_path, small_data, tiny_ckpt, capsys):
    path = small_config(tmp_path, small_data, max_steps=2)
    args = ["train", "--task", "phone_linear", "--config", str(path), "--upstream", str(tiny_ckpt)]
    superb.main([*args, "--out", str(tmp_path / "l1"), "--layer", "1"])
    r = json.loads((tmp_path / "l1" / "results.json").read_text())
    assert r["layer"] == 1 and r["layers"] == [1] and r["layer_weights"] == [1.0]
    superb.main([*args, "--out", str(tmp_path / "ft"), "--finetune", "--lr", "0.001"])
    r = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert r["finetune"] is True and r["lr"] == 0.001
    from scpc.downstream.probe import load_probe_file

    assert load_probe_file(tmp_path / "ft" / "dev-best.ckpt")["upstream"] is not None


@pytest.mark.slow
def test_superb_run_sh_with_the_fbank_baseline_and_an_lr_sweep(tmp_path, mini_data, small_data):
    conf = small_config(tmp_path, small_data, "phone_linear", max_steps=4)
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(conf.read_text())
    opts = ["--task", "phone_linear", "--upstream", "fbank", "--config", tiny]
    opts += ["--datadir", mini_data.parent, "--expdir", tmp_path / "exp"]
    proc = run_script(ROOT / "local" / "superb_run.sh", *opts)
    run = tmp_path / "exp" / "baselines" / "fbank" / "superb" / "tiny"
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("phone_linear fbank-80: accuracy ")
    assert lines[0].endswith(str(run))
    for f in ("results.json", "metrics.csv", "curves.png", "train.log", "dev-best.ckpt"):
        assert (run / f).is_file(), f
    assert json.loads((run / "results.json").read_text())["cmvn"] is True  # as s3prl's baselines
    again = run_script(ROOT / "local" / "superb_run.sh", *opts)
    assert again.stdout == proc.stdout  # finished: not redone
    result_only = run_script(ROOT / "local" / "superb_run.sh", *opts, "--stage", "2")
    assert result_only.stdout == proc.stdout and "scpc-superb train" not in result_only.stderr
    no_model = ["--task", "phone_linear", *opts[4:]]  # the default model, never trained here
    missing = run_script(ROOT / "local" / "superb_run.sh", *no_model, check=False)
    assert (
        missing.returncode == 1
        and "cpc.mini-fbank/version_0/best.ckpt; train it first" in missing.stderr
    )

    sweep = run_script(
        ROOT / "local" / "superb_lr_sweep.sh",
        *opts[:4],
        "--lrs",
        "1e-2 1e-3",
        "--parallel",
        "2",  # both at once; the table keeps the order given
        *opts[6:],
        "--",
        "--config",
        tiny,
    )
    table = sweep.stdout.splitlines()
    assert table[0].split()[:3] == ["lr", "dev", "accuracy"]
    assert [row.split()[0] for row in table[1:3]] == ["0.01", "0.001"]
    assert sum("<- best" in row for row in table) == 1
    choice = json.loads((run.parent / "tiny.lr_sweep.json").read_text())
    assert choice["lr"] in (0.01, 0.001) and set(choice["runs"]) == {
        str(run) + ".lr1e-2",
        str(run) + ".lr1e-3",
    }


def _results(
    path, task, upstream, value, dev, lr, metric="accuracy", higher=True, layer=None, cmvn=False
):
    run = path / f"{upstream}.{task}.{lr}.{cmvn}"
    run.mkdir()
    r = {
        "task": task,
        "metric": metric,
        "higher_is_better": higher,
        "value": value,
        "test": {metric: value},
        "dev": {metric: dev} if dev is not None else None,
        "upstream_name": upstream,
        "layer": layer,
        "cmvn": cmvn,
        "finetune": False,
        "lr": lr,
    }
    (run / "results.json").write_text(json.dumps(r))
    return str(run)


def test_table_has_a_row_per_upstream_a_column_per_task_and_keeps_the_dev_best_run(
    tmp_path, capsys
):
    runs = [
        _results(tmp_path, "ks", "fbank", 50.0, 40.0, 0.01),
        _results(tmp_path, "ks", "fbank", 45.0, 60.0, 0.001),  # better on dev: shown
        _results(tmp_path, "pr", "fbank", 30.5, 31.0, 0.01, "per", False),
        _results(tmp_path, "pr", "fbank", 20.0, 35.0, 0.001, "per", False),  # worse on dev
        _results(tmp_path, "asv", "cpc.mini", 12.25, None, 0.01, "eer", False),
        _results(tmp_path, "asv", "cpc.mini", 10.0, None, 0.001, "eer", False),  # no dev: test
        _results(tmp_path, "ks", "cpc.mini", 70.0, 70.0, 0.01, layer=1),
        _results(tmp_path, "ks", "fbank", 10.0, 90.0, 0.01, cmvn=True),  # another system
    ]
    csv_out = tmp_path / "table.csv"
    assert superb.main(["table", *runs, "--out", str(csv_out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["upstream", "pr", "PER", "ks", "acc", "asv", "EER"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["fbank", "30.50", "45.00", "-"]
    assert lines[3].split() == ["cpc.mini", "-", "-", "10.00"]
    assert lines[4].split() == ["cpc.mini", "layer", "1", "-", "70.00", "-"]
    assert lines[5].split() == ["fbank", "cmvn", "-", "10.00", "-"]
    assert len({len(line) for line in lines}) == 1  # aligned
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "upstream,task,metric,value,lr,run" and len(rows) == 6
