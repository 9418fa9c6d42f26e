"""Extraction speed of scpc-a2r with a randomly initialised encoder (default cpc.small).

Writes <work>/best.ckpt, then times (1) the whole CLI, ``scpc-a2r --device cpu --in-map
wav.scp best.ckpt out``, end to end with OMP_NUM_THREADS=--threads, --repeats times, and a
1-file run for the start-up cost; (2) the in-process loop, ``scpc.extract.run_job`` after the
model is loaded (reading, encoding and writing every file, start-up excluded), with the
CLI's default batches and with one utterance per batch as the reference does. Run 1 of a
loop meets every input shape for the first time (as the CLI does); later runs repeat the
same shapes, whose oneDNN convolution primitives are then cached.

  .venv/bin/python bench/extract_rtf.py [--quick] [--in-map wav.scp] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import roofline
import torch
from benchlib import ROOT, ensure_mini_data, load_average, print_table, read_scp

from scpc import config as scpc_config
from scpc import extract
from scpc.audio import SAMPLE_RATE, read_audio
from scpc.frontend import frontend_from_config, load_frontend_config
from scpc.models.checkpoint import save_inference_checkpoint
from scpc.models.inference import GPU_BATCH_SECONDS
from scpc.train.model import PretrainModel


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="cpc.small", help="conf/model.<name>.yaml")
    p.add_argument("--in-map", type=Path, help="wav.scp to extract (default: mini test set)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_extract"), help="scratch dir")
    p.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS / torch threads")
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each kind")
    p.add_argument(
        "--batch-seconds", type=float, help="scpc-a2r --batch-seconds (default: its own)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off", help="scpc-a2r --amp")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (4 files)")
    return p.parse_args(argv)


def make_checkpoint(model: str, path: Path) -> None:
    config = scpc_config.load(ROOT / "conf" / f"model.{model}.yaml")
    fe_config = load_frontend_config(ROOT / "conf" / "feats" / f"{config['feat_type']}.json")
    torch.manual_seed(0)
    feat_size = frontend_from_config(fe_config).feat_size
    encoder = PretrainModel(config, feat_size).encoder()
    save_inference_checkpoint(path, encoder, fe_config, {})


def run_cli(
    scp: Path, ckpt: Path, out: Path, threads: int, batch_seconds: float | None, args
) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one whole scpc-a2r process."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), SCPC_QUIET="1")
    cmd = [str(ROOT / ".venv" / "bin" / "scpc-a2r"), "--device", args.device, "--amp", args.amp]
    cmd += ["--in-map", str(scp)]
    if batch_seconds is not None:
        cmd += ["--batch-seconds", str(batch_seconds)]
    start = time.perf_counter()
    proc = subprocess.Popen([*cmd, str(ckpt), str(out)], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"scpc-a2r failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss / 1e6


def run_loop(scp: Path, ckpt: Path, out: Path, batch_samples: int, args) -> float:
    """Wall seconds of extract.run_job over every utterance, the model already loaded."""
    shutil.rmtree(out, ignore_errors=True)
    job = extract.Job(
        str(ckpt), str(out), "-1", device=args.device, batch_samples=batch_samples, amp=args.amp
    )
    utts = extract.read_map(scp)
    prepared = extract.prepare(job)
    start = time.perf_counter()
    summary = extract.run_job(job, utts, prepared)
    wall = time.perf_counter() - start
    assert summary.files == len(utts)
    return wall


def encode_flops_per_audio_second(ckpt: Path, seconds: float = 4.0) -> float:
    """FLOPs of the checkpoint's front-end and encoder on one unpadded utterance, per second."""
    from scpc.models.inference import load_model

    model, _ = load_model(str(ckpt), "cpu")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, int(seconds * SAMPLE_RATE), generator=g) * 2 - 1
    lens = torch.tensor([x.shape[1]])
    with torch.no_grad():
        return roofline.flops_per_audio_second(lambda: model(x, lens), seconds)


def speed(audio_s: float, wall: float, flops: float = 0.0, peak: float = 0.0) -> str:
    out = f"{wall:6.2f} s  {audio_s / wall:6.1f}x real time  RTF {wall / audio_s:.4f}"
    return out + (f"  {roofline.fraction(flops, audio_s / wall, peak)}" if peak else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    entries = read_scp(args.in_map or ensure_mini_data() / "test" / "wav.scp")
    repeats = 1 if args.quick else args.repeats
    if args.quick:
        entries = entries[:4]
    lengths = {utt: len(read_audio(entry)) for utt, entry in entries}
    audio_s = sum(lengths.values()) / SAMPLE_RATE
    scp, one = args.work / "wav.scp", args.work / "one.scp"
    scp.write_text("".join(f"{u} {e}\n" for u, e in entries), encoding="utf-8")
    shortest = min(entries, key=lambda ue: lengths[ue[0]])
    one.write_text(f"{shortest[0]} {shortest[1]}\n", encoding="utf-8")
    ckpt, out = args.work / "best.ckpt", args.work / "out"
    make_checkpoint(args.model, ckpt)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    peaks = roofline.measure(args.device, args.quick)
    amp16 = args.amp != "off" and args.device.startswith("cuda")
    peak = peaks["gemm_bf16"] if amp16 else max(peaks["gemm"], peaks["conv1d"])
    flops = encode_flops_per_audio_second(ckpt)

    rows = [
        ("model / threads", f"{args.model} (random init) / {args.threads}"),
        ("device / amp", f"{args.device} / {args.amp}"),
        (
            "CLI --batch-seconds",
            str(args.batch_seconds or "default (1 utterance per batch on CPU)"),
        ),
        ("input", f"{len(entries)} files, {audio_s:.1f} s of audio ({scp})"),
        ("load average at start", load_average()),
        (
            "roofline (measured now)",
            ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) + " GFLOP/s",
        ),
        ("model FLOPs per audio second", f"{flops / 1e9:.2f} GFLOP (forward)"),
    ]
    cli_walls = []
    for i in range(repeats):
        wall, rss = run_cli(scp, ckpt, out, args.threads, args.batch_seconds, args)
        cli_walls.append(wall)
        rows.append(
            (
                f"CLI end to end, run {i + 1}",
                f"{speed(audio_s, wall, flops, peak)}  peak RSS {rss:.2f} GB",
            )
        )
    wall, _ = run_cli(one, ckpt, out, args.threads, args.batch_seconds, args)
    rows.append(("CLI on 1 file (start-up)", f"{wall:6.2f} s"))
    rows.append(("CLI best run minus start-up", speed(audio_s, max(min(cli_walls) - wall, 1e-3))))
    for name, batch_samples in (
        (f"{GPU_BATCH_SECONDS:g} s batches", int(GPU_BATCH_SECONDS * SAMPLE_RATE)),
        ("1 utt per batch", 1),
    ):
        for i in range(repeats):
            wall = run_loop(scp, ckpt, out, batch_samples, args)
            cache = "new lengths" if i == 0 else "lengths seen"  # oneDNN caches per shape
            rows.append(
                (
                    f"in-process loop, {name}, run {i + 1} ({cache})",
                    speed(audio_s, wall, flops, peak),
                )
            )
    rows.append(("load average at end", load_average()))
    rows.append(("reference (ref-perf.md 4)", "38-41x end to end, ~52x loop, 0.78 GB"))
    print_table("extract_rtf: scpc-a2r", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
