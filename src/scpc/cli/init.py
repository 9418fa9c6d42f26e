"""scpc-init: baseline checkpoints in best.ckpt format, for ABX and probe reference rows.

    scpc-init model exp/cpc.small/version_0/model.yaml random.ckpt [--seed 0]
    scpc-init frontend conf/feats/mfcc-13.json mfcc.ckpt

``model``: the config's encoder as initialised, before any training (a frozen model.yaml, or
a conf file whose front-end is read from --feats-dir). ``frontend``: the front-end's
features themselves (an identity encoder), e.g. filter banks or MFCCs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scpc import config as cfg
from scpc.cli.common import run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-init", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("model", help="a randomly initialised model of a config")
    p.add_argument("config", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feats-dir", type=Path, default=Path("conf/feats"))
    p = sub.add_parser("frontend", help="a front-end's features (identity encoder)")
    p.add_argument("frontend", type=Path)
    p.add_argument("out", type=Path)
    args = ap.parse_args(argv)

    import torch

    from scpc.frontend import frontend_from_config, load_frontend_config
    from scpc.models.checkpoint import save_inference_checkpoint
    from scpc.models.encoders import IdentityEncoder

    if args.kind == "frontend":
        fe = load_frontend_config(args.frontend)
        encoder = IdentityEncoder(frontend_from_config(fe).feat_size)
        save_inference_checkpoint(args.out, encoder, fe, {"name": args.frontend.stem})
        return 0
    from scpc.train.model import PretrainModel

    config = cfg.load(args.config)
    fe = config["frontend"] or load_frontend_config(args.feats_dir / f"{config['feat_type']}.json")
    torch.manual_seed(args.seed)
    model = PretrainModel(config, frontend_from_config(fe).feat_size)
    provenance = {"name": config["name"], "random_init": True, "seed": args.seed}
    save_inference_checkpoint(args.out, model.encoder(), fe, provenance)
    return 0


def entry() -> None:
    run(main)
