"""Speed of SUPERB-style probe training (scpc-superb) on the mini corpus.

For a randomly initialised upstream (default cpc.mini) and the fbank-80 baseline, times
(1) filling the frozen-output cache of the training set (the upstream's real-time factor),
(2) training steps of the PR head (linear CTC) and the ASR head (two BiLSTMs) from the cache,
and (3) the same PR steps with the upstream run live at every step (``train.cache none``, what
fine-tuning and waveform-cropping tasks pay). Evaluation is left out of every timing.

  .venv/bin/python bench/probe_speed.py [--quick] [--threads 2] [--steps 100]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from benchlib import ROOT, ensure_mini_data, load_average, peak_rss_gb, print_table

from scpc.cli.init import main as init_main
from scpc.downstream.config import load_config
from scpc.downstream.data import durations
from scpc.downstream.tasks import make_task
from scpc.downstream.trainer import SuperbTrainer


def upstreams(work: Path, model: str) -> dict[str, Path]:
    """A random-init ``model`` checkpoint and the fbank-80 baseline checkpoint (scpc-init)."""
    ckpt, fbank = work / f"{model}.ckpt", work / "fbank-80.ckpt"
    conf = ROOT / "conf"
    init_main(
        ["model", str(conf / f"model.{model}.yaml"), str(ckpt), "--feats-dir", str(conf / "feats")]
    )
    init_main(["frontend", str(conf / "feats" / "fbank-80.json"), str(fbank)])
    return {model: ckpt, "fbank-80": fbank}


def trainer(
    task: str,
    upstream: Path,
    data: Path,
    out: Path,
    steps: int,
    cache: str,
    device="cpu",
    amp="off",
):
    t = make_task(task)
    overrides = {
        "data.train": str(data / "train"),
        "data.dev": str(data / "dev"),
        "data.test": str(data / "test"),
        "train.device": device,
        "train.amp": amp,
        "train.cache": cache,
        "train.max_steps": 10**6,
        "train.eval_every_steps": 10**6,
        "train.checkpoint_every_steps": 10**6,
        "train.log_every_steps": steps,
    }
    cfg = load_config(ROOT / "conf" / f"superb.{task}.mini.yaml", t, overrides)
    return SuperbTrainer(t, cfg, upstream, out, quiet=True)


def timed_steps(tr: SuperbTrainer, steps: int) -> float:
    """Seconds per optimiser step over ``steps`` steps after 5 warm-up steps."""
    tr.fit(until=5)
    tic = time.perf_counter()
    tr.fit(until=5 + steps)
    return (time.perf_counter() - tic) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="cpc.mini", help="conf/model.<name>.yaml, random init")
    p.add_argument("--steps", type=int, default=100, help="timed optimiser steps per setting")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off", help="train.amp")
    p.add_argument("--quick", action="store_true", help="10 steps, a smoke run")
    args = p.parse_args(argv)
    steps = 10 if args.quick else args.steps
    torch.set_num_threads(args.threads)
    data = ensure_mini_data()
    work = Path(tempfile.mkdtemp(prefix="bench_probe."))
    rows = [("load average at start", load_average()), ("threads", str(args.threads))]
    try:
        for name, ckpt in upstreams(work, args.model).items():
            tr = trainer(
                "pr", ckpt, data, work / f"{name}.pr", steps, "memory", args.device, args.amp
            )
            tic = time.perf_counter()
            tr.lengths("train")  # fills the cache
            fill = time.perf_counter() - tic
            seconds = sum(durations(tr.splits["train"], [str(data / "train")]))
            rows.append(
                (
                    f"{name}: cache fill, train ({seconds / 60:.1f} min)",
                    f"{fill:.1f} s, RTF {fill / seconds:.4f}",
                )
            )
            rows.append((f"{name}: PR step from cache", f"{1000 * timed_steps(tr, steps):.1f} ms"))
            tr = trainer(
                "asr", ckpt, data, work / f"{name}.asr", steps, "memory", args.device, args.amp
            )
            rows.append((f"{name}: ASR step from cache", f"{1000 * timed_steps(tr, steps):.1f} ms"))
            tr = trainer(
                "pr", ckpt, data, work / f"{name}.pr-live", steps, "none", args.device, args.amp
            )
            rows.append(
                (f"{name}: PR step, upstream live", f"{1000 * timed_steps(tr, steps):.1f} ms")
            )
        rows.append(("peak RSS", f"{peak_rss_gb():.2f} GB"))
        rows.append(("load average at end", load_average()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(f"probe training speed ({steps} steps, batch 16, mini train set, CPU)", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
