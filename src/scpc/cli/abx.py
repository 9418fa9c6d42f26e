"""scpc-abx: ZeroSpeech ABX error of frame-level features.

  scpc-abx [options] FEAT_DIR ITEM_FILE

FEAT_DIR holds one <file>.pt (float32 (frames, dim)) or <file>.npy per file named in the
item file (searched recursively), or is a Kaldi feats.scp (scpc-a2r --format kaldi, or any
Kaldi/ESPnet feature table) keyed by those file names. ITEM_FILE has the header
'#file onset offset #phone prev-phone next-phone speaker' and one phone token a line, times
in seconds. The protocol, sampling and scores are zerospeech-libriabx2's (see scpc.eval.abx);
the DTW runs batched in torch, on a GPU when there is one (--device auto).

Item times map to frames at the features' own rate: --checkpoint CKPT reads it from the
model they came from (10 ms for most, 80 ms for SPIRAL), --frame-shift SECONDS gives it.

Prints one row per condition (ABX error in %) and writes them to --out as CSV.
"""

from __future__ import annotations

import argparse

from scpc.audio import SAMPLE_RATE
from scpc.cli.common import run
from scpc.errors import ScpcError
from scpc.eval import abx
from scpc.models.checkpoint import read_downsampling_factor
from scpc.models.inference import resolve_device


def _modes(value: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    return choices if value == "all" else (value,)


def _frame_shift(seconds: float | None, checkpoint: str | None, feat_dir: str) -> float:
    """Seconds per frame: given, or the checkpoint's; guessing one would misplace every item."""
    if seconds is not None and checkpoint is not None:
        raise ScpcError("give --frame-shift or --checkpoint, not both")
    if seconds is not None:
        if not seconds > 0:
            raise ScpcError(f"--frame-shift must be positive, not {seconds}")
        return seconds
    if checkpoint is not None:
        return read_downsampling_factor(checkpoint) / SAMPLE_RATE
    raise ScpcError(
        f"{feat_dir}: the frame rate of these features is not known; pass --checkpoint with the "
        "best.ckpt they came from, or --frame-shift SECONDS"
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
        "--frame-shift",
        type=float,
        help="seconds per frame of the features (default: from --checkpoint)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="the best.ckpt the features came from: its downsampling factor gives the frame shift",
    )
    p.add_argument(
        "--item-frames",
        choices=abx.ITEM_FRAMES,
        default="librilight",
        help="librilight (default): the frames Libri-Light's scorer and libriabx2 cut, one fewer"
        " than lie inside each item; full: all of them, as fastabx does (its correction)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto (default)")
    p.add_argument("--out", help="CSV file of the scores (written atomically)")
    args = p.parse_args(argv)
    frame_shift = _frame_shift(args.frame_shift, args.checkpoint, args.feat_dir)
    result = abx.score_abx(
        args.feat_dir,
        args.item_file,
        speaker_modes=_modes(args.speaker_mode, abx.SPEAKER_MODES),
        context_modes=_modes(args.context_mode, abx.CONTEXT_MODES),
        distance=args.distance,
        max_size_group=args.max_size_group,
        max_x_across=args.max_x_across,
        seed=args.seed,
        frame_shift=frame_shift,
        device=resolve_device(args.device),
        item_frames=args.item_frames,
    )
    table = abx.score_rows(result)
    print(
        f"# {result.num_items} items ({result.num_dropped} of {result.num_lines} dropped: "
        f"no frame), distance {result.distance}"
    )
    print(abx.format_scores(table), end="")
    if args.out:
        abx.write_scores(args.out, table)
    return 0


def entry() -> None:
    run(main)
