"""scpc-import: a released checkpoint of another system as an scpc best.ckpt.

    scpc-import cpc-audio cpc_small.pt exp/zr21.cpc-small
    scpc-import tera states-1000000.ckpt exp/tera.960h
    scpc-import scpc-ref best.ckpt exp/ref.cpc.small --feats-args conf/feats.raw.args.txt
    scpc-import cpc-audio cpc_small.pt cpc_small.best.ckpt

OUT is an experiment dir (``exp/<name>``): the model goes to OUT/version_N/best.ckpt beside a
model.yaml recording the import and its front-end as frontend.json, so the recipes'
``--model <name>`` finds it. An OUT ending in ``.ckpt`` is the file itself. Nothing is
written when the source cannot be converted. To continue training an imported model, name
it as ``training.init_checkpoint`` in a model config whose feat_type is its front-end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scpc.cli.common import run


def _formats_help() -> str:
    from scpc.importers import FORMATS, format_module

    return "\n".join(f"  {name:13s} {format_module(name).DESCRIPTION}" for name in FORMATS)


def main(argv: list[str] | None = None) -> int:
    from scpc.importers import FORMATS

    ap = argparse.ArgumentParser(
        prog="scpc-import",
        description=__doc__,
        epilog="formats:\n" + _formats_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("format", choices=list(FORMATS), metavar="FORMAT")
    ap.add_argument("src", type=Path, help="the released checkpoint")
    ap.add_argument("out", type=Path, help="exp/<name> (or a .ckpt file)")
    ap.add_argument("--version", type=int, default=0, help="version_N under OUT (default 0)")
    ap.add_argument("--name", help="model name in the provenance (default: OUT's name)")
    ap.add_argument(
        "--allow-pickle",
        action="store_true",
        help="unpickle Python objects stored beside the weights (runs code from the file)",
    )
    ap.add_argument("--feats-args", type=Path, help="scpc-ref: the model's feats.args.txt")
    ap.add_argument("--computer-json", type=Path, help="scpc-ref: its feature computer JSON")
    args = ap.parse_args(argv)

    from scpc.importers.run import import_checkpoint

    out = import_checkpoint(
        args.format,
        args.src,
        args.out,
        version=args.version,
        name=args.name,
        allow_pickle=args.allow_pickle,
        feats_args=args.feats_args,
        computer_json=args.computer_json,
    )
    print(out)
    return 0


def entry() -> None:
    run(main)
