"""scpc-learning-curve: ABX of checkpoints kept along training, against training time
(local/zrc_run.sh --checkpoints).

    scpc-learning-curve --out-dir exp/cpc.mini/version_0/abx/mini/learning_curve \\
        --reference fbank:dev:exp/.../fbank.dev.csv \\
        exp/cpc.mini/version_0/checkpoints/epoch4.ckpt:dev:exp/.../cpc.mini.epoch4.dev.csv ...

Each entry is CKPT:PART:CSV: a checkpoint kept by training.keep_checkpoint_every_epochs (its
epochs and training time are read from it) and its scpc-abx score file. --reference NAME:PART:CSV
adds a system that does not train (drawn as a horizontal line); --untrained PART:CSV the
model's architecture as initialised (scpc-init model), the curve's start at epoch 0. Writes learning_curve.csv,
table.txt (with the first checkpoint to beat every reference across speakers) and
learning_curve.png, atomically; prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scpc.cli.common import run
from scpc.errors import ScpcError
from scpc.io import atomic_write
from scpc.models.checkpoint import read_checkpoint


def _split(text: str, first: str) -> tuple[str, str, str]:
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ScpcError(f"expected {first}:PART:CSV, got {text!r}")
    return parts[0], parts[1], parts[2]


def _trained(ckpt: str) -> tuple[int, float]:
    """Epochs done and training seconds of a kept checkpoint."""
    prov = read_checkpoint(ckpt).get("provenance", {})
    if "train_seconds" not in prov or "epoch" not in prov:
        raise ScpcError(
            f"{ckpt}: no training time in its provenance (kept by an older scpc-train, or "
            "not a training checkpoint)"
        )
    return int(prov["epoch"]) + 1, float(prov["train_seconds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-learning-curve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--model", default="model", help="the model's name in the table")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME:PART:CSV")
    ap.add_argument("--untrained", action="append", default=[], metavar="PART:CSV")
    ap.add_argument("entries", nargs="+", metavar="CKPT:PART:CSV")
    args = ap.parse_args(argv)
    from scpc.eval import learning_curve as lc

    entries = []
    for text in args.entries:
        ckpt, part, path = _split(text, "CKPT")
        epoch, seconds = _trained(ckpt)
        entries.append((epoch, seconds, part, path))
    for text in args.untrained:
        part, _, path = text.partition(":")
        if not part or not path:
            raise ScpcError(f"expected PART:CSV, got {text!r}")
        entries.append((0, 0.0, part, path))
    points = lc.read_points(entries)
    refs = lc.read_references([_split(t, "NAME") for t in args.reference])
    table = lc.format_table(points, refs, args.model)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    lc.write_csv(points, refs, args.model, args.out_dir / "learning_curve.csv")
    with atomic_write(args.out_dir / "table.txt") as f:
        f.write(table)
    lc.plot(points, refs, args.model, args.out_dir / "learning_curve.png")
    print(table, end="")
    print(
        f"ABX error (%), lower is better; {args.out_dir}/"
        "{learning_curve.csv,table.txt,learning_curve.png}"
    )
    return 0


def entry() -> None:
    run(main)
