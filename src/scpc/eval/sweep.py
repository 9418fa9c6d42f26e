"""A sweep's scores against one varied setting (the context width): per-run CSV, mean and
standard deviation per value, one-way ANOVA over values, and a plot (local/context_sweep.sh).

Each run contributes the scpc-abx CSV of one part (four conditions); runs repeat a value with
different seeds. The ANOVA asks whether the value changes the score beyond the spread between
seeds (scipy.stats.f_oneway over the per-value groups of seeds).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scpc.errors import ScpcError
from scpc.eval.abx import CONDITIONS
from scpc.eval.abx_table import read_scores
from scpc.io import atomic_write
from scpc.tables import aligned

RUN_COLUMNS = ("width", "seed", "part", "speaker_mode", "context_mode", "abx_error_pct")


@dataclass(frozen=True)
class Run:
    width: int
    seed: int
    part: str
    scores: dict[tuple[str, str], float]  # (speaker mode, context mode) -> error %


def parse_entry(text: str) -> tuple[int, int, str, str]:
    """``WIDTH:SEED:PART:CSV`` of the command line."""
    parts = text.split(":", 3)
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit() or not parts[2]:
        raise ScpcError(f"expected WIDTH:SEED:PART:CSV, got {text!r}")
    return int(parts[0]), int(parts[1]), parts[2], parts[3]


def read_runs(entries: Sequence[tuple[int, int, str, str]]) -> list[Run]:
    runs, seen = [], set()
    for width, seed, part, path in entries:
        if (width, seed, part) in seen:
            raise ScpcError(f"{path}: a second run of width {width}, seed {seed}, part {part}")
        seen.add((width, seed, part))
        scores = {cond: err for cond, (_dist, err) in read_scores(path).items()}
        runs.append(Run(width, seed, part, scores))
    if not runs:
        raise ScpcError("no runs to aggregate")
    return runs


@dataclass(frozen=True)
class Summary:
    """Per part and condition: width -> (mean, sd, n), and the ANOVA's (F, p)."""

    stats: dict[tuple[str, tuple[str, str]], dict[int, tuple[float, float, int]]]
    anova: dict[tuple[str, tuple[str, str]], tuple[float, float]]


def summarise(runs: Sequence[Run]) -> Summary:
    from scipy.stats import f_oneway

    stats, anova = {}, {}
    for part in sorted({r.part for r in runs}):
        for cond in CONDITIONS:
            groups: dict[int, list[float]] = {}
            for r in runs:
                if r.part == part and cond in r.scores:
                    groups.setdefault(r.width, []).append(r.scores[cond])
            if not groups:
                continue
            stats[(part, cond)] = {
                w: (float(np.mean(g)), float(np.std(g, ddof=1)) if len(g) > 1 else math.nan, len(g))
                for w, g in sorted(groups.items())
            }
            # F needs two values of the width and some spread between seeds within them
            testable = len(groups) > 1 and any(len(g) > 1 for g in groups.values())
            if testable:
                res = f_oneway(*groups.values())
                anova[(part, cond)] = (float(res.statistic), float(res.pvalue))
            else:
                anova[(part, cond)] = (math.nan, math.nan)
    return Summary(stats, anova)


def _number(x: float, fmt: str) -> str:
    return "-" if math.isnan(x) else format(x, fmt)


def format_table(summary: Summary, label: str = "width") -> str:
    """One block per part: a row per width, a column per condition (mean +- sd (n)), and the
    ANOVA's F and p under it."""
    blocks = []
    for part in sorted({p for p, _ in summary.stats}):
        conds = [c for c in CONDITIONS if (part, c) in summary.stats]
        widths = sorted({w for c in conds for w in summary.stats[(part, c)]})
        header = [f"{part}: {label}"] + [f"{s}-spk/{c}-ctx" for s, c in conds]
        rows = []
        for w in widths:
            cells = []
            for c in conds:
                got = summary.stats[(part, c)].get(w)
                if got is None:
                    cells.append("-")
                else:
                    mean, sd, n = got
                    cells.append(f"{mean:.2f} +- {_number(sd, '.2f')} ({n})")
            rows.append([str(w), *cells])
        rows.append(["ANOVA F", *(_number(summary.anova[(part, c)][0], ".2f") for c in conds)])
        rows.append(["ANOVA p", *(_number(summary.anova[(part, c)][1], ".3g") for c in conds)])
        blocks.append(aligned(header, rows, left=1, rule=True))
    return "\n".join(blocks)


def write_runs(runs: Sequence[Run], path: str | os.PathLike) -> None:
    with atomic_write(Path(path)) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(RUN_COLUMNS)
        for r in sorted(runs, key=lambda r: (r.part, r.width, r.seed)):
            for (spk, ctx), err in sorted(r.scores.items()):
                w.writerow([r.width, r.seed, r.part, spk, ctx, f"{err:.4f}"])


def plot(summary: Summary, path: str | os.PathLike, label: str = "context width (frames)") -> None:
    """ABX error against width on a log2 axis, one line per condition, error bars = seeds' sd;
    one panel per part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = sorted({p for p, _ in summary.stats})
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.8), squeeze=False)
    for ax, part in zip(axes[0], parts):
        for cond in CONDITIONS:
            got = summary.stats.get((part, cond))
            if not got:
                continue
            widths = sorted(got)
            means = [got[w][0] for w in widths]
            sds = [0.0 if math.isnan(got[w][1]) else got[w][1] for w in widths]
            f, p = summary.anova[(part, cond)]
            test = "" if math.isnan(p) else f" (F {f:.2f}, p {p:.2g})"
            ax.errorbar(widths, means, yerr=sds, marker="o", capsize=3,
                        label=f"{cond[0]} spk / {cond[1]} ctx{test}")  # fmt: skip
        ax.set_xscale("log", base=2)
        ticks = sorted({w for c in CONDITIONS for w in summary.stats.get((part, c), {})})
        ax.set_xticks(ticks, [str(w) for w in ticks])
        ax.set_xlabel(label)
        ax.set_ylabel("ABX error (%)")
        ax.set_title(f"{part}: mean and sd over seeds")
        ax.grid(alpha=0.3)
        # below the axes: the lines span the whole width
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
