"""ABX along training: the scores of checkpoints kept every few epochs
(``training.keep_checkpoint_every_epochs``) against their training time, beside reference
rows that do not train (filter banks, MFCCs), as written by local/zrc_run.sh --checkpoints.

The question a curve answers: how long must this model train before its representations beat
the references, and in which conditions.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scpc.errors import ScpcError
from scpc.eval.abx import CONDITIONS
from scpc.eval.abx_table import read_scores
from scpc.io import atomic_write
from scpc.tables import aligned

CSV_COLUMNS = (
    "system",
    "epoch",
    "train_minutes",
    "part",
    "speaker_mode",
    "context_mode",
    "abx_error_pct",
)
ACROSS = tuple(c for c in CONDITIONS if c[0] == "across")


@dataclass(frozen=True)
class Point:
    """One checkpoint's scores on one part."""

    epoch: int  # epochs trained
    minutes: float  # wall-clock training (and validation) time
    part: str
    scores: dict[tuple[str, str], float]  # (speaker mode, context mode) -> error %


@dataclass(frozen=True)
class Reference:
    """A system that does not train (fbank, mfcc) on one part."""

    name: str
    part: str
    scores: dict[tuple[str, str], float]


def _scores(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    return {cond: err for cond, (_dist, err) in read_scores(path).items()}


def read_points(entries: Sequence[tuple[int, float, str, str]]) -> list[Point]:
    """``entries``: (epochs trained, training seconds, part, scpc-abx CSV)."""
    points, seen = [], set()
    for epoch, seconds, part, path in entries:
        if (epoch, part) in seen:
            raise ScpcError(f"{path}: a second checkpoint of epoch {epoch} on part {part}")
        seen.add((epoch, part))
        points.append(Point(epoch, seconds / 60.0, part, _scores(path)))
    if not points:
        raise ScpcError("no checkpoint scores to draw")
    return sorted(points, key=lambda p: (p.part, p.epoch))


def read_references(entries: Sequence[tuple[str, str, str]]) -> list[Reference]:
    """``entries``: (system name, part, scpc-abx CSV)."""
    return [Reference(name, part, _scores(path)) for name, part, path in entries]


def first_beating(points: Sequence[Point], refs: Sequence[Reference], part: str) -> Point | None:
    """The earliest checkpoint whose across-speaker errors (both context conditions) are
    below every reference's on ``part``; None when none is, or no reference was scored."""
    best_ref = {
        c: min((r.scores[c] for r in refs if r.part == part and c in r.scores), default=None)
        for c in ACROSS
    }
    if any(v is None for v in best_ref.values()):
        return None
    for p in points:
        if p.part == part and all(c in p.scores and p.scores[c] < best_ref[c] for c in ACROSS):
            return p
    return None


def format_table(points: Sequence[Point], refs: Sequence[Reference], model: str) -> str:
    """Per part: a row per checkpoint (epochs, minutes, the four conditions), the references
    under them, and which checkpoint first beats them all across speakers."""
    blocks = []
    for part in sorted({p.part for p in points}):
        header = [f"{part}: system", "epochs", "minutes"] + [
            f"{s}-spk/{c}-ctx" for s, c in CONDITIONS
        ]
        rows = []
        for p in (p for p in points if p.part == part):
            cells = [f"{p.scores[c]:.2f}" if c in p.scores else "-" for c in CONDITIONS]
            rows.append([model, str(p.epoch), f"{p.minutes:.1f}", *cells])
        for r in (r for r in refs if r.part == part):
            cells = [f"{r.scores[c]:.2f}" if c in r.scores else "-" for c in CONDITIONS]
            rows.append([r.name, "-", "-", *cells])
        block = aligned(header, rows, left=1, rule=True)
        names = sorted({r.name for r in refs if r.part == part})
        if names:
            first = first_beating(points, refs, part)
            verdict = (
                f"epoch {first.epoch} ({first.minutes:.1f} min) is the first to beat"
                if first
                else "no checkpoint beats"
            )
            block += f"{part}: {verdict} {' and '.join(names)} across speakers (both contexts)\n"
        blocks.append(block)
    return "\n".join(blocks)


def write_csv(
    points: Sequence[Point], refs: Sequence[Reference], model: str, path: str | os.PathLike
) -> None:
    with atomic_write(Path(path)) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for p in points:
            for (spk, ctx), err in sorted(p.scores.items()):
                w.writerow([model, p.epoch, f"{p.minutes:.3f}", p.part, spk, ctx, f"{err:.4f}"])
        for r in refs:
            for (spk, ctx), err in sorted(r.scores.items()):
                w.writerow([r.name, "", "", r.part, spk, ctx, f"{err:.4f}"])


def plot(
    points: Sequence[Point], refs: Sequence[Reference], model: str, path: str | os.PathLike
) -> None:
    """A panel per part and condition: the model's error against training minutes, each
    reference a dashed horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = sorted({p.part for p in points})
    fig, axes = plt.subplots(
        len(parts),
        len(CONDITIONS),
        figsize=(3.6 * len(CONDITIONS), 3.2 * len(parts)),
        squeeze=False,
        sharex=True,
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, part in zip(axes, parts):
        mine = [p for p in points if p.part == part]
        for ax, cond in zip(row, CONDITIONS):
            xs = [p.minutes for p in mine if cond in p.scores]
            ys = [p.scores[cond] for p in mine if cond in p.scores]
            ax.plot(xs, ys, "o-", color=colours[0], label=model)
            for k, r in enumerate(r for r in refs if r.part == part and cond in r.scores):
                ax.axhline(
                    r.scores[cond], ls="--", color=colours[(k + 1) % len(colours)], label=r.name
                )
            ax.set_title(f"{part}: {cond[0]}-spk / {cond[1]}-ctx", fontsize=10)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("ABX error (%)")
    for ax in axes[-1]:
        ax.set_xlabel("training time (min)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
