"""scpc-train: pre-train a model from its frozen config on data dirs, feature dirs or shards.

    scpc-train exp/cpc.small/version_0/model.yaml data/mini/train data/mini/dev
    scpc-train exp/cpc.small/version_0/model.yaml data/mini/raw/train data/mini/raw/dev

A Kaldi data dir (wav.scp, utt2spk; segments, ali.txt if any) is read on the fly: the data
workers (training.num_workers) decode the audio and compute the config's front-end; a feature
dir (steps/make_feats.sh) holds them precomputed. Both give the same batches. A shard dir or
list (steps/make_shards.sh) is streamed, or with training.shard_access: index read by index
(again the same batches as the data dir).

Writes best.ckpt, last.ckpt, metrics.csv, curves.png and train.log next to model.yaml (or
into --exp-dir). A run finds last.ckpt and continues exactly where it stopped. For several
processes or GPUs: torchrun --nproc-per-node N $(which scpc-train) ..., srun scpc-train ...
with several tasks, or a launcher's --procs-per-node (utils/run_local.sh, utils/slurm.sh).
SIGTERM or SIGUSR1 stops training at the next step with last.ckpt saved, and exit code 128 +
the signal's number (143, 138).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from scpc import config as cfg
from scpc.cli.common import run
from scpc.locks import ExperimentLock


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("model_yaml", type=Path, help="frozen config (scpc-config freeze)")
    ap.add_argument(
        "train_dir", type=Path, help="training data dir (wav.scp), feature dir or shards"
    )
    ap.add_argument("val_dir", type=Path, help="validation data dir or feature dir")
    ap.add_argument("--exp-dir", type=Path, help="output dir (default: model.yaml's dir)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    from scpc.train.loop import Trainer  # torch import after argument errors

    config = cfg.load(args.model_yaml)
    exp = args.exp_dir or args.model_yaml.parent
    # one writer per experiment: the first process of a DDP run (torchrun's RANK, or srun's
    # task id as scpc.train.distributed reads it) holds the lock for all
    from scpc.train.distributed import slurm_environment

    rank = slurm_environment(os.environ).get("RANK") or os.environ.get("RANK", "0")
    first = rank == "0"
    with ExperimentLock(exp, "scpc-train") if first else contextlib.nullcontext():
        trainer = Trainer(config, args.train_dir, args.val_dir, exp, quiet=args.quiet)
        trainer.fit()
    return 0


def entry() -> None:
    run(main)
