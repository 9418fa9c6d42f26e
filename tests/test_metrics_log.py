"""MetricsLog: metrics.csv and its TensorBoard mirror, through a resume."""

from __future__ import annotations

import pytest
from conftest import tb_scalars

from scpc.train.metrics import MetricsLog


def test_rows_become_tensorboard_scalars_per_split(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv", tensorboard=tmp_path / "tb")
    for step in (10, 20):
        log.append(split="train", epoch=0, step=step, loss=1.0 / step, accuracy=0.5, lr=1e-3,
                   audio_per_s=12.5)  # fmt: skip
    log.append(split="valid", epoch=0, step=20, loss=0.25, accuracy=0.75)
    log.close()
    train, valid = tb_scalars(tmp_path / "tb" / "train"), tb_scalars(tmp_path / "tb" / "valid")
    assert set(train) == {"loss", "accuracy", "lr", "audio_per_s"}  # not epoch, not step
    assert train["loss"] == [(10, pytest.approx(0.1)), (20, pytest.approx(0.05))]
    assert set(valid) == {"loss", "accuracy"}  # empty cells are not numbers: skipped
    assert valid["accuracy"] == [(20, 0.75)]


def test_a_resume_purges_the_events_past_the_kept_rows(tmp_path):
    """Rows 10..40 written, the run resumes from step 20 and writes 30, 40 again with other
    values: TensorBoard shows 10, 20 of the first run and 30, 40 of the second."""
    first = MetricsLog(tmp_path / "metrics.csv", tensorboard=tmp_path / "tb")
    for step in (10, 20, 30, 40):
        first.append(split="train", epoch=0, step=step, loss=float(step))
    first.close()
    again = MetricsLog(tmp_path / "metrics.csv", tensorboard=tmp_path / "tb")
    again.keep(lambda r: int(r["step"]) <= 20)
    for step in (30, 40):
        again.append(split="train", epoch=0, step=step, loss=step + 0.5)
    again.close()
    assert [r["step"] for r in again.rows()] == ["10", "20", "30", "40"]
    got = tb_scalars(tmp_path / "tb" / "train")["loss"]
    assert got == [(10, 10.0), (20, 20.0), (30, 30.5), (40, 40.5)]


def test_a_fresh_start_removes_the_old_events(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv", tensorboard=tmp_path / "tb")
    log.append(split="train", epoch=0, step=10, loss=1.0)
    log.remove()
    assert not (tmp_path / "tb").exists() and not (tmp_path / "metrics.csv").exists()
    log.append(split="train", epoch=0, step=5, loss=2.0)
    log.close()
    assert tb_scalars(tmp_path / "tb" / "train")["loss"] == [(5, 2.0)]


def test_without_a_directory_no_events(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.append(split="train", epoch=0, step=1, loss=1.0)
    log.scalars("weights", 1, {"layer0": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
