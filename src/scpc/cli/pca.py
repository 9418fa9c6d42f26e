"""scpc-pca: fit a PCA projection of a model's representations.

  scpc-pca [options] DATA_DIR best.ckpt DIM pca_DIM.pt
  scpc-pca [options] --in-map wav.scp best.ckpt DIM pca_DIM.pt

Runs the model over the audio (a Kaldi data dir's wav.scp, cut by its segments), keeps up to
--frames-per-utt random real frames of each utterance (seeded), and fits an exact PCA. The
output holds mean, basis (C, DIM), explained_variance, layer, input_size and the
checkpoint's sha256; scpc-a2r --pca-file applies it as (x - mean) @ basis.
"""

from __future__ import annotations

import argparse

from scpc import extract
from scpc.audio import SAMPLE_RATE
from scpc.cli.common import run
from scpc.models.inference import default_batch_samples
from scpc.pca import fit_on_audio


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scpc-pca",
        usage="%(prog)s [options] (DATA_DIR | --in-map FILE) CHECKPOINT DIM OUT",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="ARG", help="[DATA_DIR] CHECKPOINT DIM OUT")
    p.add_argument("--in-map", help="file of '<uttid> <path-or-pipe>' lines, e.g. wav.scp")
    p.add_argument("--layer", default="-1", help="-1: final output (default), or hidden state N")
    p.add_argument(
        "--frames-per-utt", type=int, default=100, help="frames kept per utterance (0: all)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the frame choice (default: 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto (default)")
    p.add_argument(
        "--batch-seconds",
        type=float,
        help="padded audio per batch (default: one utterance on a CPU, 100 s on a GPU)",
    )
    p.add_argument("--resample", action="store_true", help="resample other rates to 16 kHz")
    p.add_argument("--channel", type=int, help="channel of multi-channel audio (0-based)")
    args = p.parse_args(argv)
    if len(args.paths) != (3 if args.in_map else 4):
        p.error("expected DATA_DIR CHECKPOINT DIM OUT, or --in-map FILE CHECKPOINT DIM OUT")
    checkpoint, dim, out = args.paths[-3:]
    try:
        dim_ = int(dim)
    except ValueError:
        p.error(f"DIM must be an integer, got {dim!r}")
    if args.batch_seconds is not None and args.batch_seconds <= 0:
        p.error("--batch-seconds must be positive")
    utts = extract.read_map(args.in_map) if args.in_map else extract.read_data_dir(args.paths[0])
    pca = fit_on_audio(
        checkpoint,
        utts,
        dim_,
        layer=args.layer,
        frames_per_utt=args.frames_per_utt,
        seed=args.seed,
        device=args.device,
        batch_samples=int(args.batch_seconds * SAMPLE_RATE)
        if args.batch_seconds
        else default_batch_samples(args.device),
        read_opts=extract.ReadOptions(args.resample, args.channel),
    )
    pca.save(out)
    kept = pca.explained_variance.sum() / max(float(pca.total_variance), 1e-30)
    print(f"scpc-pca: {pca.dim} of {pca.input_size} dims ({100 * kept:.1f}% of variance) -> {out}")
    return 0


def entry() -> None:
    run(main)
