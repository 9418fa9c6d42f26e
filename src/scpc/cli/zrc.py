"""scpc-zrc: the pieces of the ZeroSpeech abxLS path (local/zrc_run.sh --set abxLS).

scpc-zrc check                                  exit 1 with one line if zrc's server is unreachable
scpc-zrc params --checkpoint CKPT OUT           params.yaml from conf/zrc/abxLS.params.yaml
scpc-zrc meta --checkpoint CKPT OUT             meta.yaml from conf/zrc/abxLS.meta.yaml
scpc-zrc wav-scp APP_DIR SUBSET OUT             '<utt> <wav>' lines of a pulled abxLS subset
scpc-zrc collect SUBMISSION SYSTEM OUT_DIR      zrc's scores as scpc-abx CSVs per subset
scpc-zrc zrc ARGS...                            zerospeech-benchmarks' zrc command itself
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scpc.cli.common import run
from scpc.eval import zrc

CONF = Path(__file__).resolve().parents[3] / "conf" / "zrc"


def _checkpoint_facts(path: str) -> tuple[dict, dict]:
    from scpc.modelinfo import describe
    from scpc.models.checkpoint import load_inference_checkpoint

    return load_inference_checkpoint(path).provenance, describe(path)


def _cuda(value: str) -> bool:
    if value == "auto":
        import torch

        return torch.cuda.is_available()
    return value == "true"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scpc-zrc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="is the ZeroSpeech server reachable?")
    c.add_argument("--url", help=f"the index zrc fetches (default: {zrc.REPO_URL})")
    c.add_argument("--timeout", type=float, default=15.0, help="seconds (default: 15)")

    c = sub.add_parser("params", help="render params.yaml")
    c.add_argument("--checkpoint", required=True, help="the scored model (its frame rate)")
    c.add_argument(
        "--distance", default="cosine", help="cosine (default), euclidean, kl, kl_symmetric"
    )
    c.add_argument("--cuda", choices=("auto", "true", "false"), default="auto")
    c.add_argument("--template", default=str(CONF / "abxLS.params.yaml"))
    c.add_argument("out")

    c = sub.add_parser("meta", help="render meta.yaml")
    c.add_argument("--checkpoint", required=True, help="the scored model (its description)")
    c.add_argument("--pca", type=int, help="the representations are PCA-projected to this size")
    c.add_argument("--template", default=str(CONF / "abxLS.meta.yaml"))
    c.add_argument("out")

    c = sub.add_parser("wav-scp", help="list a subset of the pulled dataset")
    c.add_argument("app_dir", help="zrc's APP_DIR (the dataset is in APP_DIR/datasets/)")
    c.add_argument("subset", choices=zrc.SUBSETS)
    c.add_argument("out")

    c = sub.add_parser("collect", help="convert zrc's scores to scpc-abx CSVs")
    c.add_argument("--distance", default="cosine", help="recorded in the CSVs (default: cosine)")
    c.add_argument("submission")
    c.add_argument("system")
    c.add_argument("out_dir")

    c = sub.add_parser("zrc", help="run zrc (zerospeech-benchmarks) with these arguments")
    c.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["zrc"]:  # everything after it is zrc's, --help included
        return zrc.run_zrc(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "check":
        zrc.check_online(args.url, args.timeout)
    elif args.command == "params":
        _, info = _checkpoint_facts(args.checkpoint)
        values = zrc.params_values(info["downsampling_factor"], args.distance, _cuda(args.cuda))
        zrc.write_yaml(args.out, zrc.render(args.template, values))
    elif args.command == "meta":
        provenance, info = _checkpoint_facts(args.checkpoint)
        values = zrc.meta_values(provenance, info, args.pca)
        zrc.write_yaml(args.out, zrc.render(args.template, values))
    elif args.command == "wav-scp":
        entries = zrc.subset_audio(zrc.dataset_dir(args.app_dir), args.subset)
        zrc.write_wav_scp(entries, args.out)
    elif args.command == "collect":
        for path in zrc.convert_scores(args.submission, args.system, args.out_dir, args.distance):
            print(path)
    return 0


def entry() -> None:
    run(main)
