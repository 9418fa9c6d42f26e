"""Collecting per-system ABX CSVs (scpc-abx --out) into one scores.csv and an aligned table."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from scpc.errors import ScpcError
from scpc.eval.abx import CONDITIONS
from scpc.io import atomic_write
from scpc.tables import aligned

COLUMNS = ("system", "part", "speaker_mode", "context_mode", "distance", "abx_error_pct")


def read_scores(path: str | os.PathLike) -> dict[tuple[str, str], tuple[str, float]]:
    """(speaker_mode, context_mode) -> (distance, error %) of one scpc-abx CSV."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such score file") from None
    if not set(COLUMNS[2:]) <= set(reader.fieldnames or ()):
        raise ScpcError(f"{path}: not an scpc-abx score file")
    try:
        return {
            (r["speaker_mode"], r["context_mode"]): (r["distance"], float(r["abx_error_pct"]))
            for r in rows
        }
    except (KeyError, ValueError):
        raise ScpcError(f"{path}: not an scpc-abx score file") from None


def combine(entries: list[tuple[str, str, str]], out: str | os.PathLike) -> str:
    """``entries``: (system, part, csv path). Writes ``out``; returns the printed table."""
    rows = []
    for system, part, path in entries:
        for (spk, ctx), (distance, err) in read_scores(path).items():
            rows.append((system, part, spk, ctx, distance, err))
    with atomic_write(Path(out)) as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(r[:5] + (f"{r[5]:.3f}",) for r in rows)
    header = ["system", "part"] + [f"{s}-spk/{c}-ctx" for s, c in CONDITIONS]
    table = []
    for system, part, _ in entries:
        cells = {(r[2], r[3]): r[5] for r in rows if r[0] == system and r[1] == part}
        table.append(
            [system, part] + [f"{cells[c]:.2f}" if c in cells else "-" for c in CONDITIONS]
        )
    return aligned(header, table, left=2, rule=True)
