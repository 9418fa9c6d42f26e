"""A sweep's scores against one varied setting (the context width): per-run CSV, mean and
standard deviation per value, one-way ANOVA over values, and a plot (local/context_sweep.sh).

Each run contributes, per part, the scpc-abx CSV (four conditions) and optionally the
results.json of a phone-recognition probe (scpc-superb: PER) and of the CTC baseline
(scpc-baseline decode: WER); runs repeat a value with different seeds. The ANOVA asks whether
the value changes a score beyond the spread between seeds (scipy.stats.f_oneway over the
per-value groups of seeds).
"""

from __future__ import annotations

import csv
import json
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

RUN_COLUMNS = ("width", "seed", "part", "measure", "value")
RESULT_KINDS = ("pr", "baseline")  # results.json of scpc-superb (PER) and scpc-baseline (WER)
ASR_MEASURES = ("PER", "WER")


def abx_measure(cond: tuple[str, str]) -> str:
    return f"{cond[0]}-spk/{cond[1]}-ctx"


ABX_MEASURES = tuple(abx_measure(c) for c in CONDITIONS)


@dataclass(frozen=True)
class Run:
    width: int
    seed: int
    part: str
    scores: dict[str, float]  # measure (ABX condition, PER, WER) -> error %


def _width_seed(text: str, fields: list[str], what: str) -> None:
    if len(fields) != 4 or not fields[0].isdigit() or not fields[1].isdigit() or not fields[2]:
        raise ScpcError(f"expected {what}, got {text!r}")


def parse_entry(text: str) -> tuple[int, int, str, str]:
    """``WIDTH:SEED:PART:CSV`` of the command line (an scpc-abx score file)."""
    parts = text.split(":", 3)
    _width_seed(text, parts, "WIDTH:SEED:PART:CSV")
    return int(parts[0]), int(parts[1]), parts[2], parts[3]


def parse_result(text: str) -> tuple[int, int, str, str]:
    """``WIDTH:SEED:KIND:JSON``: KIND pr (scpc-superb results.json) or baseline
    (scpc-baseline's decode/results.json)."""
    parts = text.split(":", 3)
    _width_seed(text, parts, "WIDTH:SEED:KIND:JSON")
    if parts[2] not in RESULT_KINDS:
        raise ScpcError(f"{text!r}: KIND must be one of {', '.join(RESULT_KINDS)}")
    return int(parts[0]), int(parts[1]), parts[2], parts[3]


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such results file") from None
    except json.JSONDecodeError as e:
        raise ScpcError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None


def read_result(kind: str, path: str) -> dict[str, dict[str, float]]:
    """part -> {measure: error %} of one results.json. The probe's PER is on its test set
    (the head chosen on dev); the baseline's WER on every decoded set, from the decoding
    (greedy, beam, beam + LM) with the lowest dev WER."""
    r = _read_json(path)
    try:
        if kind == "pr":
            if r["metric"] != "per":
                raise ScpcError(f"{path}: a {r['metric']} result, not phone recognition (per)")
            got = {"test": {"PER": float(r["test"]["per"])}}
            if r.get("dev"):
                got["dev"] = {"PER": float(r["dev"]["per"])}
            return got
        sets = r["sets"]
        chosen = min(sets["dev"], key=lambda d: sets["dev"][d]["wer"])
        return {part: {"WER": float(s[chosen]["wer"])} for part, s in sets.items()}
    except (KeyError, TypeError, ValueError):
        raise ScpcError(f"{path}: not a {kind} results file") from None


def read_runs(
    entries: Sequence[tuple[int, int, str, str]],
    results: Sequence[tuple[int, int, str, str]] = (),
) -> list[Run]:
    """``entries``: (width, seed, part, scpc-abx CSV); ``results``: (width, seed, kind,
    results.json). One run per (width, seed, part) with every measure given for it."""
    scores: dict[tuple[int, int, str], dict[str, float]] = {}
    for width, seed, part, path in entries:
        if (width, seed, part) in scores:
            raise ScpcError(f"{path}: a second run of width {width}, seed {seed}, part {part}")
        got = read_scores(path)
        scores[(width, seed, part)] = {abx_measure(c): got[c][1] for c in CONDITIONS if c in got}
    seen = set()
    for width, seed, kind, path in results:
        if (width, seed, kind) in seen:
            raise ScpcError(f"{path}: a second {kind} result of width {width}, seed {seed}")
        seen.add((width, seed, kind))
        for part, measures in read_result(kind, path).items():
            scores.setdefault((width, seed, part), {}).update(measures)
    if not scores:
        raise ScpcError("no runs to aggregate")
    return [Run(w, s, p, m) for (w, s, p), m in scores.items()]


def measures_of(runs: Sequence[Run]) -> list[str]:
    """The measures scored, ABX conditions first."""
    have = {m for r in runs for m in r.scores}
    return [m for m in (*ABX_MEASURES, *ASR_MEASURES) if m in have]


@dataclass(frozen=True)
class Summary:
    """Per part and measure: width -> (mean, sd, n), and the ANOVA's (F, p)."""

    stats: dict[tuple[str, str], dict[int, tuple[float, float, int]]]
    anova: dict[tuple[str, str], tuple[float, float]]


def summarise(runs: Sequence[Run]) -> Summary:
    from scipy.stats import f_oneway

    stats, anova = {}, {}
    for part in sorted({r.part for r in runs}):
        for measure in measures_of(runs):
            groups: dict[int, list[float]] = {}
            for r in runs:
                if r.part == part and measure in r.scores:
                    groups.setdefault(r.width, []).append(r.scores[measure])
            if not groups:
                continue
            stats[(part, measure)] = {
                w: (float(np.mean(g)), float(np.std(g, ddof=1)) if len(g) > 1 else math.nan, len(g))
                for w, g in sorted(groups.items())
            }
            # F needs two values of the width and some spread between seeds within them
            testable = len(groups) > 1 and any(len(g) > 1 for g in groups.values())
            if testable:
                res = f_oneway(*groups.values())
                anova[(part, measure)] = (float(res.statistic), float(res.pvalue))
            else:
                anova[(part, measure)] = (math.nan, math.nan)
    return Summary(stats, anova)


def _number(x: float, fmt: str) -> str:
    return "-" if math.isnan(x) else format(x, fmt)


def _measures(summary: Summary, part: str) -> list[str]:
    return [m for m in (*ABX_MEASURES, *ASR_MEASURES) if (part, m) in summary.stats]


def format_table(summary: Summary, label: str = "width") -> str:
    """One block per part: a row per width, a column per measure (mean +- sd (n)), and the
    ANOVA's F and p under it."""
    blocks = []
    for part in sorted({p for p, _ in summary.stats}):
        measures = _measures(summary, part)
        widths = sorted({w for m in measures for w in summary.stats[(part, m)]})
        header = [f"{part}: {label}", *measures]
        rows = []
        for w in widths:
            cells = []
            for m in measures:
                got = summary.stats[(part, m)].get(w)
                if got is None:
                    cells.append("-")
                else:
                    mean, sd, n = got
                    cells.append(f"{mean:.2f} +- {_number(sd, '.2f')} ({n})")
            rows.append([str(w), *cells])
        rows.append(["ANOVA F", *(_number(summary.anova[(part, m)][0], ".2f") for m in measures)])
        rows.append(["ANOVA p", *(_number(summary.anova[(part, m)][1], ".3g") for m in measures)])
        blocks.append(aligned(header, rows, left=1, rule=True))
    return "\n".join(blocks)


def write_runs(runs: Sequence[Run], path: str | os.PathLike) -> None:
    order = {m: k for k, m in enumerate((*ABX_MEASURES, *ASR_MEASURES))}
    with atomic_write(Path(path)) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(RUN_COLUMNS)
        for r in sorted(runs, key=lambda r: (r.part, r.width, r.seed)):
            for m, err in sorted(r.scores.items(), key=lambda kv: order[kv[0]]):
                w.writerow([r.width, r.seed, r.part, m, f"{err:.4f}"])


def plot(summary: Summary, path: str | os.PathLike, label: str = "context width (frames)") -> None:
    """Error against width on a log2 axis, error bars = seeds' sd: a panel per part with a
    line per ABX condition, and one panel with a line per ASR measure and part (PER, WER)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = sorted({p for p, m in summary.stats if m in ABX_MEASURES})
    asr = [(p, m) for p, m in sorted(summary.stats) if m in ASR_MEASURES]
    panels = [(f"{p}: ABX, mean and sd over seeds", [(p, m) for m in ABX_MEASURES]) for p in parts]
    if asr:
        panels.append(("ASR on frozen features, mean and sd over seeds", asr))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.8), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels):
        ticks = set()
        for part, measure in keys:
            got = summary.stats.get((part, measure))
            if not got:
                continue
            widths = sorted(got)
            ticks |= set(widths)
            means = [got[w][0] for w in widths]
            sds = [0.0 if math.isnan(got[w][1]) else got[w][1] for w in widths]
            f, p = summary.anova[(part, measure)]
            test = "" if math.isnan(p) else f" (F {f:.2f}, p {p:.2g})"
            name = measure.replace("-spk/", " spk / ").replace("-ctx", " ctx")
            if measure in ASR_MEASURES:
                name = f"{measure} {part}"
            ax.errorbar(widths, means, yerr=sds, marker="o", capsize=3, label=f"{name}{test}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ticks), [str(w) for w in sorted(ticks)])
        ax.set_xlabel(label)
        ax.set_ylabel("error (%)" if keys[0][1] in ASR_MEASURES else "ABX error (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        # below the axes: the lines span the whole width
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
