"""scpc-abx-table: combine scpc-abx score files into one CSV and print an aligned table.

    scpc-abx-table exp/cpc.mini/version_0/abx/mini/scores.csv \
        cpc.mini:dev:abx/cpc.mini.dev.csv fbank:dev:abx/fbank.dev.csv ...

Each argument after the output is SYSTEM:PART:CSV. The table has one row per system and part
and one column per condition (ABX error in %, lower is better).
"""

from __future__ import annotations

import argparse

from scpc.cli.common import run
from scpc.eval.abx_table import combine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-abx-table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("out", help="combined scores.csv")
    ap.add_argument("entries", nargs="+", metavar="SYSTEM:PART:CSV")
    args = ap.parse_args(argv)
    entries = []
    for e in args.entries:
        parts = e.split(":", 2)
        if len(parts) != 3:
            ap.error(f"expected SYSTEM:PART:CSV, got {e!r}")
        entries.append((parts[0], parts[1], parts[2]))
    print(combine(entries, args.out), end="")
    return 0


def entry() -> None:
    run(main)
