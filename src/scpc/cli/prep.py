"""scpc-prep: corpus preparation behind local/*_data_prep.sh."""

from __future__ import annotations

import argparse

from scpc.cli.common import run
from scpc.data import librispeech, mini, speech_commands, voxceleb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scpc-prep", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    lib = sub.add_parser("librispeech", help="a LibriSpeech part directory to a data dir")
    lib.add_argument("src", help="e.g. LibriSpeech/dev-clean")
    lib.add_argument("dest", help="e.g. data/librispeech/dev_clean")

    at = sub.add_parser("attach-alignments", help="add ali.txt, phones.txt (and abx.item)")
    at.add_argument("--items", help="ABX item file")
    at.add_argument("--strip-prefix", default="", help="remove this prefix from alignment ids")
    at.add_argument("dest")
    at.add_argument("alignments")
    at.add_argument("phones")

    cs = sub.add_parser("cpc-split", help="the CPC train/validation split of train-clean-100")
    cs.add_argument("src")
    cs.add_argument("train_list")
    cs.add_argument("val_list")
    cs.add_argument("train_dest")
    cs.add_argument("val_dest")

    sc = sub.add_parser("speech-commands", help="Speech Commands v0.01 to train/valid/test")
    sc.add_argument("--test-root", help="the official test set (speech_commands_test_set_v0.01)")
    sc.add_argument("root")
    sc.add_argument("dest")

    vx = sub.add_parser("voxceleb1", help="VoxCeleb1 to sid_* and asv_* data dirs")
    vx.add_argument("--trials", default="veri_test.txt", help="trial list inside the root")
    vx.add_argument("root")
    vx.add_argument("dest")

    vm = sub.add_parser("verify-mini", help="check the mini corpus against its manifest")
    vm.add_argument("corpus")

    ml = sub.add_parser(
        "mini-layouts", help="Speech Commands and VoxCeleb1 trees from the mini corpus"
    )
    ml.add_argument("corpus")
    ml.add_argument("dest")

    fl = sub.add_parser("from-lhotse", help="lhotse manifests to a Kaldi data dir")
    fl.add_argument("recordings", help="recordings.jsonl.gz (a lhotse RecordingSet)")
    fl.add_argument("supervisions", help="supervisions.jsonl.gz (a lhotse SupervisionSet)")
    fl.add_argument("out_dir")
    fl.add_argument("--cuts", help="cuts.jsonl.gz: their features become OUT_DIR/feats.scp")
    fl.add_argument("--phones", help="the phone table of the alignments (default: scpc's)")

    tl = sub.add_parser("to-lhotse", help="a Kaldi data dir to lhotse manifests")
    tl.add_argument("data_dir")
    tl.add_argument("out", help="directory of recordings/supervisions/cuts.jsonl.gz")
    tl.add_argument(
        "--feats",
        help="the cuts' features: a feature dir or feats.scp (default: DATA_DIR/feats.scp)",
    )

    args = p.parse_args(argv)
    if args.cmd == "librispeech":
        print(librispeech.prepare_part(args.src, args.dest))
    elif args.cmd == "attach-alignments":
        print(
            librispeech.attach_alignments(
                args.dest, args.alignments, args.phones, args.items, args.strip_prefix
            )
        )
    elif args.cmd == "cpc-split":
        print(
            "\n".join(
                librispeech.cpc_split(
                    args.src, args.train_list, args.val_list, args.train_dest, args.val_dest
                )
            )
        )
    elif args.cmd == "speech-commands":
        print("\n".join(speech_commands.prepare(args.root, args.dest, args.test_root)))
    elif args.cmd == "voxceleb1":
        print("\n".join(voxceleb.prepare(args.root, args.dest, args.trials)))
    elif args.cmd == "from-lhotse":
        from scpc.data.lhotse_manifests import from_lhotse

        n = from_lhotse(args.recordings, args.supervisions, args.out_dir, args.cuts, args.phones)
        print(f"{args.out_dir}: {n} utterances")
    elif args.cmd == "to-lhotse":
        from scpc.data.lhotse_manifests import to_lhotse

        counts = to_lhotse(args.data_dir, args.out, args.feats)
        print(f"{args.out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    elif args.cmd == "verify-mini":
        print(f"{args.corpus}: {mini.verify_manifest(args.corpus)} files match {mini.MANIFEST}")
    elif args.cmd == "mini-layouts":
        mini.build_layouts(args.corpus, args.dest)
        print(f"{args.dest}: speech_commands_v0.01, speech_commands_test_set_v0.01, voxceleb1")
    return 0


def entry() -> None:
    run(main)
