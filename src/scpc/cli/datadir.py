"""scpc-datadir: Kaldi data-dir utilities behind utils/*.sh (validate, fix, subset, split, ...)."""

from __future__ import annotations

import argparse
import sys

from scpc.cli.common import run
from scpc.data import datadir as dd
from scpc.errors import ScpcError

SUBSET_MODES = ("first", "last", "shortest", "speakers", "per-spk")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scpc-datadir", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("validate", help="check a data dir (utils/validate_data_dir.sh)")
    v.add_argument("--no-text", action="store_true", help="do not require text")
    v.add_argument("--no-wav", action="store_true", help="do not require wav.scp")
    v.add_argument("--no-feats", action="store_true", help="skip feats.scp even if present")
    v.add_argument("--no-spk-sort", action="store_true", help="allow utt ids not led by spk ids")
    v.add_argument("--no-check-audio", action="store_true", help="do not stat audio files")
    v.add_argument("dir")

    f = sub.add_parser(
        "fix", help="sort tables, keep utterances present in all (utils/fix_data_dir.sh)"
    )
    f.add_argument("dir")

    s = sub.add_parser(
        "subset",
        help="subset a data dir (utils/subset_data_dir.sh)",
        usage="scpc-datadir subset [--first|--last|--shortest|--speakers|--per-spk] SRC N DEST\n"
        "       scpc-datadir subset --utt-list FILE SRC DEST\n"
        "       scpc-datadir subset --spk-list FILE SRC DEST",
    )
    group = s.add_mutually_exclusive_group()
    for mode in SUBSET_MODES:
        group.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode)
    group.add_argument("--utt-list", metavar="FILE")
    group.add_argument("--spk-list", metavar="FILE")
    s.add_argument("args", nargs="+", metavar="SRC [N] DEST")

    sp = sub.add_parser("split", help="split into N parts (utils/split_data.sh)")
    sp.add_argument("--per-utt", action="store_true", help="split by utterance, not speaker")
    sp.add_argument("dir")
    sp.add_argument("num", type=int)

    c = sub.add_parser("combine", help="union of data dirs (utils/combine_data.sh)")
    c.add_argument("dest")
    c.add_argument("sources", nargs="+")

    d = sub.add_parser("utt2dur", help="write utt2dur from segments or audio headers")
    d.add_argument("dir")

    n = sub.add_parser(
        "utt2num-samples", help="write utt2num_samples (exact lengths for on-the-fly training)"
    )
    n.add_argument("dir")

    m = sub.add_parser("make-shards", help="pack into WebDataset tar shards (steps/make_shards.sh)")
    m.add_argument("--shard-seconds", type=float, default=3600.0, help="audio per shard")
    m.add_argument("--seed", type=int, default=0, help="packing order")
    m.add_argument("dir")
    m.add_argument("out")

    sub.add_parser("utt2spk-to-spk2utt", help="filter: utt2spk on stdin, spk2utt on stdout")
    sub.add_parser("spk2utt-to-utt2spk", help="filter: spk2utt on stdin, utt2spk on stdout")
    return p


def _stdin_table() -> dict[str, str]:
    table = {}
    for line in sys.stdin:
        fields = line.split(maxsplit=1)
        if fields:
            table[fields[0]] = fields[1].strip() if len(fields) > 1 else ""
    return table


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "validate":
        summary = dd.validate(
            args.dir,
            text=not args.no_text,
            wav=not args.no_wav,
            feats=not args.no_feats,
            spk_sort=not args.no_spk_sort,
            check_audio=not args.no_check_audio,
        )
        print(f"validate_data_dir: {summary}: OK")
    elif args.cmd == "fix":
        kept, before = dd.fix(args.dir)
        print(f"fix_data_dir: {args.dir}: kept {kept} of {before} utterances (backup in .backup/)")
    elif args.cmd == "subset":
        list_file = args.utt_list or args.spk_list
        if list_file:
            if len(args.args) != 2:
                raise ScpcError("usage: subset_data_dir.sh --utt-list|--spk-list FILE SRC DEST")
            src, dest = args.args
            mode, num = ("utt-list" if args.utt_list else "spk-list"), None
        else:
            if len(args.args) != 3:
                raise ScpcError(
                    "usage: subset_data_dir.sh [--first|--last|--shortest|...] SRC N DEST"
                )
            src, n, dest = args.args
            if not n.isdigit():
                raise ScpcError(f"N must be a positive integer, got {n!r}")
            mode, num = (args.mode or "even"), int(n)
        chosen = dd.select_utterances(src, mode, num, list_file)
        dd.copy_filtered(src, dest, chosen)
        print(f"subset_data_dir: {dest}: {len(chosen)} utterances")
    elif args.cmd == "split":
        parts = dd.split(args.dir, args.num, args.per_utt)
        print(f"split_data: {parts[0].parent}: {len(parts)} parts")
    elif args.cmd == "utt2num-samples":
        from scpc.data.num_samples import num_samples

        print(f"{args.dir}/utt2num_samples: {len(num_samples(args.dir))} utterances")
    elif args.cmd == "make-shards":
        from scpc.data.shards import write_shards

        index = write_shards(args.dir, args.out, args.shard_seconds, args.seed)
        print(
            f"make_shards: {args.out}: {len(index['shards'])} shards, {index['utterances']} "
            f"utterances, {index['seconds'] / 3600:.2f} h"
        )
    elif args.cmd == "combine":
        n = dd.combine(args.dest, args.sources)
        print(f"combine_data: {args.dest}: {n} utterances from {len(args.sources)} dirs")
    elif args.cmd == "utt2dur":
        n = dd.write_utt2dur(args.dir)
        print(f"get_utt2dur: {args.dir}/utt2dur: {n} utterances")
    elif args.cmd == "utt2spk-to-spk2utt":
        for k, v in dd.utt2spk_to_spk2utt(_stdin_table()).items():
            print(k, v)
    elif args.cmd == "spk2utt-to-utt2spk":
        for k, v in dd.spk2utt_to_utt2spk(_stdin_table()).items():
            print(k, v)
    return 0


def entry() -> None:
    run(main)
