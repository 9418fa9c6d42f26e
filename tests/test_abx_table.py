"""scpc-abx-table: per-system score files into one CSV and an aligned table."""

import csv

import pytest

from scpc.errors import ScpcError
from scpc.eval.abx_table import combine


def write_scores(path, errors):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["speaker_mode", "context_mode", "distance", "abx_error_pct"])
        for (spk, ctx), err in errors.items():
            w.writerow([spk, ctx, "cosine", err])


def test_combine_writes_all_rows_and_aligns_the_table(tmp_path):
    a = {
        ("within", "within"): 1.5,
        ("across", "within"): 12.25,
        ("within", "any"): 3.0,
        ("across", "any"): 14.0,
    }
    write_scores(tmp_path / "a.csv", a)
    write_scores(tmp_path / "b.csv", {("within", "within"): 40.0})
    table = combine(
        [("model", "dev", tmp_path / "a.csv"), ("random-init", "dev", tmp_path / "b.csv")],
        tmp_path / "scores.csv",
    )
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["system", "part", "within-spk/within-ctx"]
    assert lines[2].split() == ["model", "dev", "1.50", "12.25", "3.00", "14.00"]
    assert lines[3].split() == ["random-init", "dev", "40.00", "-", "-", "-"]
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(rows) == 5 and rows[1]["abx_error_pct"] == "12.250"


def test_foreign_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ScpcError, match="not an scpc-abx score file"):
        combine([("m", "dev", tmp_path / "x.csv")], tmp_path / "out.csv")
