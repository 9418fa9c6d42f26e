"""``metrics.csv``, TensorBoard events and ``curves.png``: one log and one plotter for every
trainer.

Rows are appended as training goes; a resumed run first drops the rows written after the
state it restarts from, so the file ends up as an uninterrupted run's would. Each trainer
names its own columns and draws its own panels from the rows.

With a ``tensorboard`` directory, every row is also written as TensorBoard scalars: the
first column (split or phase) names a run under it (``tb/train``, ``tb/valid``; TensorBoard
overlays runs that share a tag), ``step`` is the global step, and every other numeric column
but ``epoch`` is a tag. On resume the events past the kept rows are purged (TensorBoard's
``purge_step``), so the events, too, read as an uninterrupted run's.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scpc.io import atomic_write

# the pre-trainer's columns; the probe and baseline trainers name theirs
COLUMNS = ("split", "epoch", "step", "loss", "accuracy", "lr", "audio_per_s")


class MetricsLog:
    """Append-only CSV rows of fixed columns (floats written to 6 significant digits), and
    optionally their TensorBoard scalars under ``tensorboard``."""

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Sequence[str] = COLUMNS,
        tensorboard: str | os.PathLike | None = None,
    ) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.tensorboard = Path(tensorboard) if tensorboard is not None else None
        self._writers: dict[str, object] = {}
        self._purge: dict[str, int] = {}  # run -> first step to drop when its writer opens

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def keep(self, wanted: Callable[[dict[str, str]], bool]) -> None:
        """Drop the rows that are not ``wanted`` (rewriting the file atomically)."""
        rows = self.rows()
        kept = [r for r in rows if wanted(r)]
        if self.tensorboard is not None and "step" in self.columns:
            for run in {r[self.columns[0]] for r in rows}:
                steps = [int(float(r["step"])) for r in kept if r[self.columns[0]] == run]
                self._purge[run] = max(steps) + 1 if steps else 0
        if len(kept) == len(rows):
            return
        with atomic_write(self.path) as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(kept)

    def append(self, **row: object) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.columns})
        if self.tensorboard is not None and "step" in self.columns:
            step = int(float(str(row["step"])))
            values = {
                k: row[k] for k in self.columns[1:] if k not in ("step", "epoch") and k in row
            }
            self.scalars(str(row[self.columns[0]]), step, values)

    def scalars(self, run: str, step: int, values: Mapping[str, object]) -> None:
        """TensorBoard scalars of ``run`` at ``step`` (values that are not numbers skipped)."""
        if self.tensorboard is None:
            return
        writer = self._writers.get(run)
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(
                log_dir=os.fspath(self.tensorboard / run), purge_step=self._purge.pop(run, None)
            )
            self._writers[run] = writer
        for tag, value in values.items():
            try:
                number = float(str(value))
            except ValueError:
                continue
            writer.add_scalar(tag, number, step)
        writer.flush()  # rows are few; a killed run keeps every event written

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def remove(self) -> None:
        """A fresh start: no rows, no events."""
        self.close()
        self.path.unlink(missing_ok=True)
        if self.tensorboard is not None:
            shutil.rmtree(self.tensorboard, ignore_errors=True)


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) else v


@dataclass
class Curve:
    label: str
    points: list[tuple[float, float]]
    style: str = "-"


def points(
    rows: Sequence[dict[str, str]], x: str, y: str, **match: str
) -> list[tuple[float, float]]:
    """(x, y) of the rows whose columns equal ``match`` and whose ``y`` is set."""
    return [
        (float(r[x]), float(r[y]))
        for r in rows
        if r[y] and all(r[k] == v for k, v in match.items())
    ]


def plot_curves(
    png_path: str | os.PathLike,
    panels: Sequence[tuple[str, Sequence[Curve]]],
    xlabel: str = "optimiser step",
) -> None:
    """One panel per (y label, curves), side by side, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(panels), figsize=(7 if len(panels) == 1 else 5 * len(panels), 4), dpi=100
    )
    for ax, (ylabel, curves) in zip([axes] if len(panels) == 1 else axes, panels):
        for c in curves:
            if c.points:
                ax.plot(*zip(*c.points), c.style, label=c.label, markersize=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    save_figure(fig, png_path)


def save_figure(fig, png_path: str | os.PathLike) -> None:
    """Write a matplotlib figure as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_write(png_path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
