"""scpc-feats: compute a Kaldi data dir's features into a feature dir (behind steps/make_feats.sh).

With --job J --num-jobs N it computes the J-th of N contiguous shares of the utterances,
skipping those already done; a final call without --job checks that every utterance is done
(computing any that are not) and marks the dir complete.

With --import-scp FEATS_SCP it copies existing Kaldi features of the data dir's utterances
instead (one process), recording a front-end of kind ``kaldi``.
"""

from __future__ import annotations

import argparse

from scpc.cli.common import run
from scpc.data import featdir
from scpc.frontend import load_frontend_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scpc-feats", description=__doc__)
    p.add_argument(
        "--frontend",
        default="conf/feats/fbank-80.json",
        help="front-end JSON (default: %(default)s)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only check the front-end, the data dir and an existing feature dir's front-end",
    )
    p.add_argument(
        "--import-scp",
        metavar="FEATS_SCP",
        help="import the utterances' features from this Kaldi feats.scp instead of computing them",
    )
    p.add_argument("--job", type=int, help="this job's number, 1..--num-jobs")
    p.add_argument("--num-jobs", type=int, default=1, help="number of parallel jobs")
    p.add_argument("data_dir", help="Kaldi data dir with wav.scp (+ segments, ali.txt)")
    p.add_argument("feat_dir", help="output feature dir")
    args = p.parse_args(argv)
    if args.num_jobs < 1:
        p.error("--num-jobs must be positive")
    if args.job is not None and not 1 <= args.job <= args.num_jobs:
        p.error(f"--job must lie in 1..{args.num_jobs}")

    if args.import_scp is not None:
        written, skipped = featdir.import_scp(args.import_scp, args.data_dir, args.feat_dir)
        print(
            f"{args.feat_dir}: {written} utterances imported from {args.import_scp}, {skipped} already there"
        )
        return 0
    config = load_frontend_config(args.frontend)
    if args.check:
        featdir.check(args.data_dir, args.feat_dir, config)
        return 0
    if args.job is None and featdir.is_complete(args.feat_dir, config):
        print(f"{args.feat_dir}: already complete (remove {args.feat_dir}/.complete to redo)")
        return 0
    written, skipped = featdir.compute_feat_dir(
        args.data_dir, args.feat_dir, config, args.job, args.num_jobs if args.job else None
    )
    share = f" (job {args.job}/{args.num_jobs})" if args.job is not None else ""
    print(f"{args.feat_dir}: {written} utterances computed, {skipped} already there{share}")
    return 0


def entry() -> None:
    run(main)
