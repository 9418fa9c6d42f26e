"""scpc-learning-curve: ABX of kept checkpoints against training time, beside references."""

from __future__ import annotations

import csv

import pytest
from test_sweep import write_abx_csv

from scpc.cli import learning_curve as cli
from scpc.errors import ScpcError
from scpc.eval import learning_curve as lc
from scpc.models.checkpoint import save_inference_checkpoint
from scpc.models.encoders import FeedForwardEncoder


def kept(path, epoch_index, seconds):
    """A checkpoint as training keeps it: provenance with its epoch and training time."""
    provenance = {"epoch": epoch_index, "train_seconds": seconds}
    save_inference_checkpoint(path, FeedForwardEncoder(1, 4), {"name": "raw"}, provenance)
    return path


def test_table_csv_plot_and_the_first_checkpoint_to_beat_the_references(tmp_path, capsys):
    entries = []
    # across-speaker errors (2nd and 4th) fall below fbank's 16/17 at epoch 4, not before;
    # epoch 2 beats fbank across/within but not across/any
    errors = {1: [9, 30, 12, 31], 2: [8, 15.9, 11, 17.5], 4: [7, 15.5, 10, 16.5]}
    for e, errs in errors.items():
        ckpt = kept(tmp_path / f"epoch{e}.ckpt", e - 1, 60.0 * e)
        for part in ("dev", "test"):
            write_abx_csv(tmp_path / f"m{e}.{part}.csv", errs)
            entries.append(f"{ckpt}:{part}:{tmp_path / f'm{e}.{part}.csv'}")
    write_abx_csv(tmp_path / "fbank.dev.csv", [1, 16, 5, 17])
    write_abx_csv(tmp_path / "mfcc.dev.csv", [2, 15.6, 6, 18])
    write_abx_csv(tmp_path / "fbank.test.csv", [1, 10, 5, 10])  # never beaten on test
    refs = ["--reference", f"fbank:dev:{tmp_path}/fbank.dev.csv"]
    refs += ["--reference", f"mfcc:dev:{tmp_path}/mfcc.dev.csv"]
    refs += ["--reference", f"fbank:test:{tmp_path}/fbank.test.csv"]
    write_abx_csv(tmp_path / "random.dev.csv", [40, 41, 42, 43])
    refs += ["--untrained", f"dev:{tmp_path}/random.dev.csv"]
    out = tmp_path / "curve"
    assert cli.main(["--out-dir", str(out), "--model", "m", *refs, *entries]) == 0
    printed = capsys.readouterr().out
    table = (out / "table.txt").read_text()
    assert table in printed
    lines = table.splitlines()
    assert lines[2].split() == ["m", "0", "0.0", "40.00", "41.00", "42.00", "43.00"]
    assert lines[3].split() == ["m", "1", "1.0", "9.00", "30.00", "12.00", "31.00"]
    assert "dev: epoch 4 (4.0 min) is the first to beat fbank and mfcc across speakers" in table
    assert "test: no checkpoint beats fbank across speakers" in table
    with open(out / "learning_curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2 * 4 + 4 + 3 * 4
    assert {r["train_minutes"] for r in rows if r["system"] == "m"} == {
        "0.000",
        "1.000",
        "2.000",
        "4.000",
    }
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_no_reference_no_verdict_and_order_by_epoch(tmp_path):
    paths = []
    for e in (3, 1):
        write_abx_csv(tmp_path / f"{e}.csv", [1, 2, 3, 4])
        paths.append((e, 10.0 * e, "dev", tmp_path / f"{e}.csv"))
    points = lc.read_points(paths)
    assert [p.epoch for p in points] == [1, 3]
    assert lc.first_beating(points, [], "dev") is None
    assert "beat" not in lc.format_table(points, [], "m")


def test_bad_entries_are_one_line_errors(tmp_path):
    write_abx_csv(tmp_path / "s.csv", [1, 2, 3, 4])
    with pytest.raises(ScpcError, match="expected CKPT:PART:CSV"):
        cli.main(["--out-dir", str(tmp_path / "o"), "nocolons"])
    old = tmp_path / "old.ckpt"
    save_inference_checkpoint(old, FeedForwardEncoder(1, 4), {"name": "raw"}, {"epoch": 0})
    with pytest.raises(ScpcError, match="old.ckpt: no training time"):
        cli.main(["--out-dir", str(tmp_path / "o"), f"{old}:dev:{tmp_path / 's.csv'}"])
    with pytest.raises(ScpcError, match="a second checkpoint of epoch 1"):
        lc.read_points([(1, 1.0, "dev", tmp_path / "s.csv")] * 2)
    with pytest.raises(ScpcError, match="no such score file"):
        lc.read_points([(1, 1.0, "dev", tmp_path / "missing.csv")])
