"""scpc-abx: ZeroSpeech ABX error of frame-level features.

  scpc-abx [options] FEAT_DIR ITEM_FILE

FEAT_DIR holds one <file>.pt (float32 (frames, dim)) or <file>.npy per file named in the
item file (searched recursively). ITEM_FILE has the header
'#file onset offset #phone prev-phone next-phone speaker' and one phone token a line, times
in seconds. The protocol, sampling and scores are zerospeech-libriabx2's (see scpc.eval.abx);
the DTW runs batched in torch, on a GPU when there is one (--device auto).

Prints one row per condition (ABX error in %) and writes them to --out as CSV.
"""

from __future__ import annotations

import argparse
import csv

import torch

from scpc.cli.common import run
from scpc.errors import ScpcError
from scpc.eval import abx
from scpc.io import atomic_write
from scpc.tables import aligned

COLUMNS = (
    "speaker_mode",
    "context_mode",
    "distance",
    "abx_error_pct",
    "phone_pairs",
    "groups",
    "triplets",
    "dtw",
)
NUMERIC = COLUMNS[3:]


def _modes(value: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    return choices if value == "all" else (value,)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except RuntimeError:
        raise ScpcError(f"unknown device {name!r}; use cpu, cuda[:N] or auto") from None
    return name


def rows(result: abx.AbxResult) -> list[dict[str, str]]:
    return [
        {
            "speaker_mode": s.speaker_mode,
            "context_mode": s.context_mode,
            "distance": result.distance,
            "abx_error_pct": f"{100 * s.error:.4f}",
            "phone_pairs": str(s.num_pairs),
            "groups": str(s.num_groups),
            "triplets": str(s.num_triplets),
            "dtw": str(s.num_dtw),
        }
        for s in result.scores
    ]


def format_table(table: list[dict[str, str]]) -> str:
    return aligned(
        COLUMNS, [[r[c] for c in COLUMNS] for r in table], left=len(COLUMNS) - len(NUMERIC)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scpc-abx",
        usage="%(prog)s [options] FEAT_DIR ITEM_FILE",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("feat_dir", metavar="FEAT_DIR")
    p.add_argument("item_file", metavar="ITEM_FILE")
    p.add_argument("--speaker-mode", choices=("within", "across", "all"), default="all")
    p.add_argument("--context-mode", choices=("within", "any", "all"), default="all")
    p.add_argument("--distance", choices=abx.DISTANCES, default="cosine")
    p.add_argument(
        "--max-size-group",
        type=int,
        default=abx.MAX_SIZE_GROUP,
        help=f"items drawn per group (default: {abx.MAX_SIZE_GROUP})",
    )
    p.add_argument(
        "--max-x-across",
        type=int,
        default=abx.MAX_X_ACROSS,
        help=f"X speakers per A, B pair (default: {abx.MAX_X_ACROSS})",
    )
    p.add_argument(
        "--seed", type=int, default=abx.SEED, help=f"sampling seed (default: {abx.SEED})"
    )
    p.add_argument(
        "--frame-shift", type=float, default=0.01, help="seconds per frame (default: 0.01)"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto (default)")
    p.add_argument("--out", help="CSV file of the scores (written atomically)")
    args = p.parse_args(argv)
    result = abx.score_abx(
        args.feat_dir,
        args.item_file,
        speaker_modes=_modes(args.speaker_mode, abx.SPEAKER_MODES),
        context_modes=_modes(args.context_mode, abx.CONTEXT_MODES),
        distance=args.distance,
        max_size_group=args.max_size_group,
        max_x_across=args.max_x_across,
        seed=args.seed,
        frame_shift=args.frame_shift,
        device=_device(args.device),
    )
    table = rows(result)
    print(
        f"# {result.num_items} items ({result.num_dropped} of {result.num_lines} dropped: "
        f"no frame), distance {result.distance}"
    )
    print(format_table(table), end="")
    if args.out:
        with atomic_write(args.out) as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(table)
    return 0


def entry() -> None:
    run(main)
