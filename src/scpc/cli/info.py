"""scpc-info: describe a best.ckpt (front-end, sizes, frame rule, layers, provenance).

Prints aligned ``key value`` lines; recipes read one with
``scpc-info best.ckpt | awk '$1 == "output_size" {print $2}'``. The frame rule is
T' = (S + frame_offset) // downsampling_factor frames for S >= min_samples audio samples
(none for shorter inputs).
"""

from __future__ import annotations

import argparse
import sys

from scpc.cli.common import run
from scpc.io import atomic_write
from scpc.modelinfo import describe, format_info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scpc-info",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="an inference checkpoint (best.ckpt)")
    p.add_argument("out", nargs="?", help="write here instead of standard output")
    args = p.parse_args(argv)
    text = format_info(describe(args.checkpoint))
    if args.out:
        with atomic_write(args.out) as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def entry() -> None:
    run(main)
