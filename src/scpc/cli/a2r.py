"""scpc-a2r: audio to representations, one file per utterance.

  scpc-a2r [options] IN_DIR best.ckpt OUT_DIR
  scpc-a2r [options] --in-map wav.scp best.ckpt OUT_DIR

IN_DIR is searched recursively for files ending in --audio-suffix; outputs mirror its
subdirectories and are named after the files (minus the suffix). --in-map reads
``<uttid> <path-or-Kaldi-pipe>`` lines (a Kaldi wav.scp works) and writes flat outputs.
Each output is float32 (or --dtype float64) (T', C), or (L, T', C) with --layer all. Existing outputs are
skipped (re-running resumes) unless --overwrite. --job J --num-jobs N extracts the J-th of N
shares of the inputs, for job arrays (steps/make_reps.sh runs them through a launcher).

--format kaldi writes Kaldi tables instead (kaldiio; Kaldi's binary matrix format, which
copy-feats and ESPnet read): OUT_DIR/feats.J.ark, feats.J.scp and utt2num_frames.J for job J
(1 without --job), resumed by whole job; without --job, also the merged OUT_DIR/feats.scp
and utt2num_frames (steps/make_reps.sh merges its jobs' parts).
"""

from __future__ import annotations

import argparse
import time

from scpc import extract
from scpc.audio import SAMPLE_RATE
from scpc.cli.common import run
from scpc.data.featdir import job_share
from scpc.errors import ScpcError
from scpc.locks import LOCK, ExperimentLock
from scpc.models import inference
from scpc.nn.amp import CHOICES as AMP_CHOICES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scpc-a2r",
        usage="%(prog)s [options] (IN_DIR | --in-map FILE) CHECKPOINT OUT_DIR",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="[IN_DIR] CHECKPOINT OUT_DIR")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--in-dir", help="audio directory (may also be given as the first PATH)")
    src.add_argument("--in-map", help="file of '<uttid> <path-or-pipe>' lines, e.g. wav.scp")
    p.add_argument("--audio-suffix", default=".wav", help="with an input dir (default: .wav)")
    p.add_argument(
        "--format",
        choices=(*extract.FORMATS, extract.KALDI),
        default="pt",
        help="pt (default): <uttid>.pt; npy: <uttid>.npy; kaldi: feats.ark/feats.scp",
    )
    p.add_argument("--numpy", action="store_true", help="the same as --format npy")
    p.add_argument(
        "--dtype",
        choices=tuple(extract.DTYPES),
        default="float32",
        help="output precision (default: float32; ZeroSpeech's abxLS wants float64)",
    )
    p.add_argument(
        "--layer",
        default="-1",
        help="-1: the final output (default); N: hidden state N (0-based; negative from the "
        "end); all: every hidden state stacked as (L, T', C)",
    )
    p.add_argument("--pca-file", help="apply this scpc-pca projection: (x - mean) @ basis")
    p.add_argument("--device", default="auto", help="cpu, cuda[:N] or auto (default)")
    p.add_argument(
        "--batch-seconds",
        type=float,
        help="padded audio per batch, in seconds (default: one utterance per batch on a CPU, "
        f"{inference.GPU_BATCH_SECONDS:g} s on a GPU); inputs are sorted by length",
    )
    p.add_argument(
        "--amp",
        choices=AMP_CHOICES,
        default="off",
        help="autocast the model: off (default), auto (bf16/fp16 on a GPU), bf16, fp16",
    )
    p.add_argument("--nj", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument(
        "--job",
        type=int,
        help="with --num-jobs: do only this share (1-based, as Kaldi's JOB) of the inputs",
    )
    p.add_argument("--num-jobs", type=int, help="the number of shares the inputs are split in")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that exist")
    p.add_argument(
        "--resample", action="store_true", help="resample other rates to 16 kHz (else refuse)"
    )
    p.add_argument("--channel", type=int, help="channel of multi-channel audio (0-based)")
    return p


def inputs(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list, str, str]:
    given = args.in_dir or args.in_map
    if len(args.paths) != (2 if given else 3):
        p.error("expected IN_DIR CHECKPOINT OUT_DIR, or --in-map FILE CHECKPOINT OUT_DIR")
    if args.in_map:
        utts = extract.read_map(args.in_map)
    else:
        utts = extract.scan_dir(args.in_dir or args.paths[0], args.audio_suffix)
    return utts, args.paths[-2], args.paths[-1]


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    p = parser()
    args = p.parse_args(argv)
    if (args.batch_seconds is not None and args.batch_seconds <= 0) or args.nj < 1:
        p.error("--batch-seconds must be positive and --nj at least 1")
    utts, checkpoint, out_dir = inputs(p, args)
    if (args.job is None) != (args.num_jobs is None):
        p.error("--job and --num-jobs go together")
    if args.job is not None:  # a contiguous share of the input order, as scpc-feats --job
        utts = job_share(utts, args.job, args.num_jobs)
    fmt = "npy" if args.numpy else args.format
    job = extract.Job(
        checkpoint=checkpoint,
        out_dir=out_dir,
        layer=args.layer,
        fmt=fmt,
        device=args.device,
        batch_samples=int(args.batch_seconds * SAMPLE_RATE)
        if args.batch_seconds
        else inference.default_batch_samples(args.device),
        read_opts=extract.ReadOptions(args.resample, args.channel),
        pca_file=args.pca_file,
        dtype=args.dtype,
        amp=args.amp,
        part=str(args.job or 1),
    )
    if fmt == extract.KALDI:
        if len({u.uttid for u in utts}) != len(utts):
            raise ScpcError("two inputs have the same utterance id (a Kaldi table's key)")
    elif len({extract.output_path(out_dir, u, job.fmt) for u in utts}) != len(utts):
        raise ScpcError("two inputs map to the same output file")
    # one writer per output dir; the jobs of one extraction (--job J) each hold their own share
    lock = LOCK if args.job is None else f"{LOCK}.{args.job}"
    with ExperimentLock(out_dir, "scpc-a2r", lock):
        s = extract.extract_all(job, utts, args.nj, args.overwrite)
        if fmt == extract.KALDI and args.job is None:
            extract.merge_kaldi_parts(out_dir)
    wall = time.perf_counter() - start
    audio_s = s.samples / SAMPLE_RATE
    rtf = f"{wall / audio_s:.4f}" if audio_s else "-"
    print(
        f"scpc-a2r: {s.files} files written, {s.skipped} already present; "
        f"{audio_s / 3600:.3f} h of audio in {wall:.1f} s (real-time factor {rtf}) -> {out_dir}"
    )
    return 0


def entry() -> None:
    run(main)
