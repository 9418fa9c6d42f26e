"""scpc-sweep: a sweep's ABX scores against the context width (local/context_sweep.sh).

    scpc-sweep --out-dir exp/sweeps/cpc-mini 2:0:dev:exp/cpc.csa2-mini.seed0/version_0/abx/mini/cpc.csa2-mini.seed0.dev.csv ...

Each entry is WIDTH:SEED:PART:CSV (an scpc-abx score file); --result WIDTH:SEED:KIND:JSON adds
a run's phone-recognition probe (KIND pr: scpc-superb's results.json, PER on test and dev) or
CTC baseline (KIND baseline: scpc-baseline's decode/results.json, WER of every set from the
decoding best on dev). Writes runs.csv (width, seed, part, measure, value), table.txt (per
part: mean +- sd over seeds (n) per width and measure, and the one-way ANOVA over widths, F
and p) and abx_vs_width.png (log2 width axis, error bars over seeds, one line per ABX
condition; a panel of PER/WER when given), all atomically; prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scpc.cli.common import run
from scpc.io import atomic_write


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--result", action="append", default=[], metavar="WIDTH:SEED:KIND:JSON")
    ap.add_argument("entries", nargs="*", metavar="WIDTH:SEED:PART:CSV")
    args = ap.parse_intermixed_args(argv)  # context_sweep.sh interleaves --result and entries
    from scpc.eval import sweep

    runs = sweep.read_runs(
        [sweep.parse_entry(e) for e in args.entries], [sweep.parse_result(r) for r in args.result]
    )
    summary = sweep.summarise(runs)
    table = sweep.format_table(summary)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sweep.write_runs(runs, args.out_dir / "runs.csv")
    with atomic_write(args.out_dir / "table.txt") as f:
        f.write(table)
    sweep.plot(summary, args.out_dir / "abx_vs_width.png")
    print(table, end="")
    print(
        f"ABX error, PER, WER (%), lower is better; {args.out_dir}/{{runs.csv,table.txt,abx_vs_width.png}}"
    )
    return 0


def entry() -> None:
    run(main)
