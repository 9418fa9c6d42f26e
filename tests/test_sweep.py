"""scpc-sweep's aggregation (table, ANOVA, plot) and local/context_sweep.sh end to end."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from conftest import ROOT, run_script

from scpc import config as cfg
from scpc.cli import sweep as cli
from scpc.errors import ScpcError
from scpc.eval import abx, sweep


def write_abx_csv(path, errors):
    rows = [
        {
            "speaker_mode": s,
            "context_mode": c,
            "distance": "cosine",
            "abx_error_pct": f"{e:.4f}",
            "phone_pairs": "1",
            "groups": "1",
            "triplets": "1",
            "dtw": "1",
        }
        for (s, c), e in zip(abx.CONDITIONS, errors)
    ]
    abx.write_scores(path, rows)


def one_way_f(groups):
    """The textbook F: between-group over within-group mean squares."""
    values = np.concatenate(groups)
    grand = values.mean()
    k, n = len(groups), len(values)
    between = sum(len(g) * (np.mean(g) - grand) ** 2 for g in groups) / (k - 1)
    within = sum(((np.asarray(g) - np.mean(g)) ** 2).sum() for g in groups) / (n - k)
    return between / within


def test_table_anova_runs_csv_and_plot(tmp_path, capsys):
    rng = np.random.default_rng(0)
    widths, seeds = (2, 4, 8), (0, 1, 2)
    entries, by_width = [], {}
    for w in widths:
        for s in seeds:
            # width 4 is best by ~3 points in every condition; seeds spread ~0.5
            errs = [20 + 3 * (w != 4) + i + rng.normal(0, 0.5) for i in range(4)]
            path = tmp_path / f"w{w}s{s}.dev.csv"
            write_abx_csv(path, errs)
            entries.append(f"{w}:{s}:dev:{path}")
            by_width.setdefault(w, []).append(round(errs[1], 4))  # across/within
    out = tmp_path / "sweep"
    assert cli.main(["--out-dir", str(out), *entries]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith((out / "table.txt").read_text())
    summary = sweep.summarise(sweep.read_runs([sweep.parse_entry(e) for e in entries]))
    cond = "across-spk/within-ctx"
    f, p = summary.anova[("dev", cond)]
    assert f == pytest.approx(one_way_f(list(by_width.values())), rel=1e-6)
    assert p < 0.01
    mean, sd, n = summary.stats[("dev", cond)][4]
    assert (mean, n) == (pytest.approx(np.mean(by_width[4])), 3)
    assert sd == pytest.approx(np.std(by_width[4], ddof=1))
    assert f"{mean:.2f} +- {sd:.2f} (3)" in printed and "ANOVA p" in printed
    with open(out / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 * 4 and {r["width"] for r in rows} == {"2", "4", "8"}
    assert (out / "abx_vs_width.png").stat().st_size > 10_000


def test_one_seed_has_no_spread_and_no_test(tmp_path):
    entries = []
    for w in (2, 4):
        write_abx_csv(tmp_path / f"{w}.csv", [10, 20, 30, 40])
        entries.append((w, 0, "dev", str(tmp_path / f"{w}.csv")))
    summary = sweep.summarise(sweep.read_runs(entries))
    assert math.isnan(summary.anova[("dev", "within-spk/within-ctx")][0])
    assert math.isnan(summary.stats[("dev", "within-spk/within-ctx")][2][1])
    assert "ANOVA F" in sweep.format_table(summary)


def write_json(path, value):
    path.write_text(json.dumps(value))
    return path


def test_probe_per_and_baseline_wer_join_the_abx_runs(tmp_path, capsys):
    entries, results = [], []
    for w in (2, 8):
        for s in (0, 1):
            write_abx_csv(tmp_path / f"{w}{s}.csv", [1, 2, 3, 4])
            entries.append(f"{w}:{s}:test:{tmp_path / f'{w}{s}.csv'}")
            pr = {"metric": "per", "test": {"per": 30.0 + w + s}, "dev": {"per": 31.0 + w}}
            results.append(f"{w}:{s}:pr:{write_json(tmp_path / f'pr{w}{s}.json', pr)}")
            # beam3 is best on dev: its WER is reported on every set, not greedy's lower test
            sets = {
                "dev": {"greedy": {"wer": 90.0}, "beam3": {"wer": 80.0 + w}},
                "test": {"greedy": {"wer": 10.0}, "beam3": {"wer": 85.0 + s}},
            }
            bl = tmp_path / f"bl{w}{s}.json"
            results.append(f"{w}:{s}:baseline:{write_json(bl, {'sets': sets})}")
    out = tmp_path / "sweep"
    # as context_sweep.sh passes them: each run's ABX entries, then its --result options
    args = ["--out-dir", str(out)]
    for k, entry in enumerate(entries):
        args += [entry, "--result", results[2 * k], "--result", results[2 * k + 1]]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("test:"))
    assert header.split()[-2:] == ["PER", "WER"]
    assert "38.50 +- 0.71 (2)" in printed  # PER test, width 8: 38 and 39
    assert "85.50 +- 0.71 (2)" in printed  # WER test of the dev-best decoding
    with open(out / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    per_dev = [r for r in rows if r["measure"] == "PER" and r["part"] == "dev"]
    assert sorted(float(r["value"]) for r in per_dev) == [33.0, 33.0, 39.0, 39.0]
    assert {r["measure"] for r in rows if r["part"] == "test"} == {
        *sweep.ABX_MEASURES,
        "PER",
        "WER",
    }
    assert (out / "abx_vs_width.png").stat().st_size > 10_000


def test_bad_results_are_one_line_errors(tmp_path):
    with pytest.raises(ScpcError, match="KIND must be one of pr, baseline"):
        sweep.parse_result("4:0:asr:x.json")
    ks = write_json(tmp_path / "ks.json", {"metric": "acc", "test": {"acc": 1.0}})
    with pytest.raises(ScpcError, match="ks.json: a acc result, not phone recognition"):
        sweep.read_runs([], [(4, 0, "pr", str(ks))])
    with pytest.raises(ScpcError, match="bad.json: not a baseline results file"):
        sweep.read_runs([], [(4, 0, "baseline", str(write_json(tmp_path / "bad.json", {})))])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ScpcError, match="broken.json: not JSON"):
        sweep.read_runs([], [(4, 0, "pr", str(tmp_path / "broken.json"))])


def test_bad_entries_are_one_line_errors(tmp_path):
    with pytest.raises(ScpcError, match="expected WIDTH:SEED:PART:CSV"):
        sweep.parse_entry("4:x:dev:a.csv")
    write_abx_csv(tmp_path / "a.csv", [1, 2, 3, 4])
    twice = [(4, 0, "dev", str(tmp_path / "a.csv"))] * 2
    with pytest.raises(ScpcError, match="a second run of width 4, seed 0, part dev"):
        sweep.read_runs(twice)
    with pytest.raises(ScpcError, match="no such score file"):
        sweep.read_runs([(4, 0, "dev", str(tmp_path / "missing.csv"))])


TINY_CSA = {
    "feat_type": "raw-norm",
    "frontend": {"name": "raw", "normalize": True},
    "latent_type": "conv",
    "context_type": "csa",
    "conv": {"output_size": 16, "norm_type": "channel"},
    "csa": {"num_layers": 1, "num_heads": 2, "dim_feedforward": 32},
    "training": {
        "batch_size": 8,
        "max_epochs": 1,
        "max_steps": 2,
        "chunking": {"policy": "fixed", "lobe_size": 4799, "max_chunks": 8},
        "cpc_loss": {"prediction_steps": 4, "negative_samples": 16},
    },
}


@pytest.mark.slow
def test_context_sweep_end_to_end(tmp_path):
    """2 widths x 2 seeds of a tiny frozen CSA model: seeds differ, outputs exist, a re-run
    trains and scores nothing and prints the same table."""
    exp = tmp_path / "exp"
    for w in (2, 4):
        for s in (0, 1):
            c = cfg.merge(cfg.DEFAULTS, dict(TINY_CSA, name=f"tiny.csa{w}"), "test")
            c["csa"]["max_width"], c["training"]["seed"] = w, s
            em = exp / f"tiny.csa{w}.seed{s}" / "version_0"
            em.mkdir(parents=True)
            (em / "model.yaml").write_text(cfg.dump(c))
    args = [ROOT / "local" / "context_sweep.sh", "--family", "tiny", "--widths", "2 4"]
    args += ["--seeds", "0 1", "--suffix", "", "--abx-parts", "dev", "--name", "t"]
    args += ["--datadir", tmp_path / "data", "--expdir", exp, "--parallel", "2"]
    first = run_script(*args)
    out = exp / "sweeps" / "t"
    table = (out / "table.txt").read_text()
    assert first.stdout.startswith(table) and "ANOVA p" in table
    for f in ("runs.csv", "abx_vs_width.png"):
        assert (out / f).is_file()
    with open(out / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["width"], r["seed"], r["part"]) for r in rows} == {
        (w, s, "dev") for w in ("2", "4") for s in ("0", "1")
    }
    # the seed is the training seed: the two seeds of a width start from different weights
    w0, w1 = (
        torch.load(exp / f"tiny.csa2.seed{s}" / "version_0" / "best.ckpt", weights_only=False)
        for s in (0, 1)
    )
    k = next(iter(w0["state_dict"]))
    assert not torch.equal(w0["state_dict"][k], w1["state_dict"][k])
    again = run_script(*args)
    assert again.stdout == first.stdout
    assert "scpc-train" not in again.stderr and "scpc-a2r" not in again.stderr


@pytest.mark.parametrize("family", ["cpc", "bestrq"])
def test_mini_sweep_configs_differ_only_in_the_context_width(family):
    """A sweep compares widths: every other setting of <family>.csa<W>-mini is the same."""
    import yaml

    widths = (2, 4, 8, 16, 32, 64, 128)
    rest = []
    for w in widths:
        c = yaml.safe_load((ROOT / "conf" / f"model.{family}.csa{w}-mini.yaml").read_text())
        assert c["name"] == f"{family}.csa{w}-mini" and c["csa"].pop("max_width") == w
        del c["name"], c["system_description"]
        rest.append(c)
    assert all(r == rest[0] for r in rest)
