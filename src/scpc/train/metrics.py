"""metrics.csv (one row per logged training window and per validation) and curves.png."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from scpc.io import atomic_write

COLUMNS = ("split", "epoch", "step", "loss", "accuracy", "lr", "audio_per_s")


class MetricsLog:
    """Append-only rows; on resume, rows past the restored position are dropped, so the file
    ends up as an uninterrupted run's would."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate(self, step: int, epoch: int) -> None:
        keep = [
            r
            for r in self.rows()
            if (r["split"] == "train" and int(r["step"]) <= step)
            or (r["split"] == "valid" and int(r["epoch"]) < epoch)
        ]
        with atomic_write(self.path) as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            w.writerows(keep)

    def append(self, **row: object) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in COLUMNS})


def _fmt(v: object) -> object:
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(csv_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Training and validation loss against optimiser steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = MetricsLog(csv_path).rows()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split, style in (("train", "-"), ("valid", "o-")):
        pts = [(int(r["step"]), float(r["loss"])) for r in rows if r["split"] == split]
        if pts:
            ax.plot(*zip(*pts), style, label=split, markersize=3)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, png_path)


def save_figure(fig, png_path: str | os.PathLike) -> None:
    """Write a matplotlib figure as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_write(png_path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
