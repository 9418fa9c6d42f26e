"""Training throughput of a CPC model config (default cpc.small) on whole utterances.

Setting a (reference scpc, ref-perf.md section 3): batches of --batch-size whole utterances of
the mini corpus's training set in wav.scp order, zero padded, an optimiser step every
--accumulate batches (and at the end of each epoch), --epochs passes over the first
--batches-per-epoch batches. Throughput is real (unpadded) audio seconds per wall second,
over the epochs after --warmup-epochs.

Setting b (env.md section 7): --plain-batch x 2 s of random audio per optimiser step; the
mean s/step of 5 steps after 2 warm-up steps.

Setting c: setting a's utterances in duration buckets (scpc.data.batch_plan.bucketed_plan,
as ``training.batch_seconds`` forms them) whose budget is setting a's mean padded audio per
batch: the same compute per batch, less of it on padding.

Every setting reports the model's FLOPs per audio second and the share of the roofline
(bench/roofline.py, measured at the start of the run) it reaches; --profile N prints the
top ops of N batches instead.

  .venv/bin/python bench/train_throughput.py [--quick] [--model cpc.small] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import roofline
import torch
from benchlib import ROOT, ensure_mini_data, load_average, peak_rss_gb, print_table, read_scp

from scpc import config as scpc_config
from scpc.audio import SAMPLE_RATE, read_audio
from scpc.data.batch_plan import bucketed_plan
from scpc.frontend import frontend_from_config, load_frontend_config
from scpc.malloc import fix_mmap_threshold
from scpc.train.model import PretrainModel
from scpc.train.schedule import make_optimizer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="cpc.small", help="conf/model.<name>.yaml")
    p.add_argument("--data", type=Path, help="training data dir with wav.scp (default: mini)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.add_argument("--amp", choices=("off", "fp16", "bf16"), default="off", help="autocast")
    p.add_argument("--batch-size", type=int, help="utterances per batch (default: the config's)")
    p.add_argument("--accumulate", type=int, help="batches per step (default: the config's)")
    p.add_argument("--batches-per-epoch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--warmup-epochs", type=int, default=1, help="left out of the statistics")
    p.add_argument("--plain-batch", type=int, default=8, help="setting b: utterances of 2 s")
    p.add_argument("--skip-a", action="store_true", help="no setting a")
    p.add_argument("--skip-b", action="store_true", help="no setting b")
    p.add_argument("--skip-c", action="store_true", help="no setting c (bucketed batches)")
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    p.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="torch.profiler over N batches of setting a: top ops",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.batches_per_epoch, args.epochs, args.warmup_epochs = 2, 2, 1
    if args.warmup_epochs >= args.epochs:
        p.error("--epochs must exceed --warmup-epochs")
    return args


@dataclass
class Trainer:
    """One model, its front-end and optimiser, with optional autocast and loss scaling."""

    model: PretrainModel
    frontend: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    amp: str

    @classmethod
    def build(cls, config: scpc_config.Config, device: torch.device, amp: str) -> Trainer:
        torch.manual_seed(config["training"]["seed"])
        fe_config = load_frontend_config(ROOT / "conf" / "feats" / f"{config['feat_type']}.json")
        frontend = frontend_from_config(fe_config).to(device)
        model = PretrainModel(config, frontend.feat_size).to(device).train()
        optimizer = make_optimizer(model.parameters(), config["training"])
        return cls(model, frontend, optimizer, device, amp)

    def __post_init__(self) -> None:
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.amp == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def batch(self, wav: torch.Tensor, lens: torch.Tensor, accumulate: int, step: bool) -> float:
        """Forward and backward of one batch (loss / accumulate), then the optimiser step if
        ``step``; returns the wall time including host-to-device copies."""
        self.sync()
        start = time.perf_counter()
        wav, lens = wav.to(self.device), lens.to(self.device)
        with self.autocast():
            feats, feat_lens = self.frontend(wav, lens)
            loss = self.model(feats, feat_lens)["loss"]
        self.scaler.scale(loss / accumulate).backward()
        if step:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self.sync()
        return time.perf_counter() - start


def train_flops_per_audio_second(trainer: Trainer, seconds: float = 4.0) -> float:
    """FLOPs of forward and backward on one unpadded utterance, per audio second (padding
    and chunking overheads then show up as a lower share of the roofline)."""
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, int(seconds * SAMPLE_RATE), generator=g) * 2 - 1).to(trainer.device)
    lens = torch.tensor([x.shape[1]], device=trainer.device)

    def step() -> None:
        with trainer.autocast():
            feats, feat_lens = trainer.frontend(x, lens)
            loss = trainer.model(feats, feat_lens)["loss"]
        loss.backward()

    flops = roofline.flops_per_audio_second(step, seconds)
    trainer.optimizer.zero_grad(set_to_none=True)
    return flops


def pad(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(w) for w in wavs])
    x = torch.zeros(len(wavs), int(lens.max()))
    for i, w in enumerate(wavs):
        x[i, : len(w)] = w
    return x, lens


def throughput(audio: list[float], times: list[float]) -> float:
    return sum(audio) / sum(times)


def setting_a(
    trainer: Trainer,
    args: argparse.Namespace,
    t: scpc_config.Config,
    flops: float,
    peak: float,
    bucketed: bool = False,
) -> list:
    data = args.data or ensure_mini_data() / "train"
    size = args.batch_size or t["batch_size"]
    accumulate = args.accumulate or t["accumulate_grad_batches"]
    entries = read_scp(data / "wav.scp")[: size * args.batches_per_epoch]
    wavs = [torch.from_numpy(read_audio(e)) for _, e in entries]  # read before timing
    if bucketed:  # the same utterances in duration buckets of the same mean padded audio
        lengths = [len(w) for w in wavs]
        padded = sum(max(lengths[i : i + size]) * size for i in range(0, len(wavs), size))
        plan = bucketed_plan(lengths, padded / len(range(0, len(wavs), size)), seed=0, epoch=0)
        batches = [pad([wavs[i] for i in b]) for b in plan]
    else:
        batches = [pad(wavs[i : i + size]) for i in range(0, len(wavs), size)]
    audio = [float(lens.sum()) / SAMPLE_RATE for _, lens in batches]
    padded = [x.numel() / SAMPLE_RATE for x, _ in batches]
    times: list[list[float]] = []
    for epoch in range(args.epochs):
        times.append([])
        for i, (x, lens) in enumerate(batches):
            step = (i + 1) % accumulate == 0 or i == len(batches) - 1
            times[-1].append(trainer.batch(x, lens, accumulate, step))
        print(f"epoch {epoch} s/batch: " + " ".join(f"{s:.2f}" for s in times[-1]), flush=True)
    steady = times[args.warmup_epochs :]
    flat_t = [s for ep in steady for s in ep]
    flat_a = audio * len(steady)
    per_batch = [a / s for a, s in zip(flat_a, flat_t)]
    med_t = statistics.median(flat_t)
    kept = [(a, s) for a, s in zip(flat_a, flat_t) if s <= 2 * med_t]
    best_times = [min(ep[j] for ep in times) for j in range(len(batches))]
    epoch_tp = [throughput(audio, ep) for ep in steady]
    return [
        (
            "data",
            f"{data} ({len(wavs)} utts, {len(batches)} batches"
            + (" in duration buckets)" if bucketed else f" of {size})"),
        ),
        ("audio per epoch", f"{sum(audio):.1f} s real, {sum(padded):.1f} s padded"),
        ("epochs (warm-up)", f"{args.epochs} ({args.warmup_epochs}); step every {accumulate}"),
        ("median s/batch (steady)", f"{med_t:.2f}"),
        ("median audio-s/s per batch", f"{statistics.median(per_batch):.2f}"),
        ("batches <=2x median", f"{throughput(*zip(*kept)):.2f} ({len(kept)}/{len(flat_t)})"),
        ("best steady epoch", f"{max(epoch_tp):.2f} audio-s/s"),
        ("best of epochs per batch", f"{throughput(audio, best_times):.2f} audio-s/s"),
        ("raw mean (steady)", f"{throughput(flat_a, flat_t):.2f} audio-s/s"),
        (
            "padded-s/s (median)",
            f"{statistics.median(p / s for p, s in zip(padded * len(steady), flat_t)):.2f}",
        ),
        ("share of roofline (best epoch)", roofline.fraction(flops, max(epoch_tp), peak)),
    ]


def setting_b(trainer: Trainer, args: argparse.Namespace, flops: float, peak: float) -> list:
    warmup, steps = (1, 2) if args.quick else (2, 5)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        x = torch.rand(args.plain_batch, 2 * SAMPLE_RATE, generator=g) * 2 - 1
        lens = torch.full((args.plain_batch,), 2 * SAMPLE_RATE)
        s = trainer.batch(x, lens, 1, True)
        if i >= warmup:
            times.append(s)
    return [
        ("batch", f"{args.plain_batch} x 2 s random audio, step every batch"),
        (f"mean s/step ({steps} after {warmup})", f"{statistics.mean(times):.3f}"),
        ("min / max s/step", f"{min(times):.3f} / {max(times):.3f}"),
        ("audio-s/s", f"{args.plain_batch * 2 / statistics.mean(times):.2f}"),
        (
            "share of roofline",
            roofline.fraction(flops, args.plain_batch * 2 / statistics.mean(times), peak),
        ),
    ]


def profile(trainer: Trainer, args: argparse.Namespace, t: scpc_config.Config) -> None:
    """The top ops (self time) of ``args.profile`` batches of setting a, after one warm-up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    data = args.data or ensure_mini_data() / "train"
    size = args.batch_size or t["batch_size"]
    entries = read_scp(data / "wav.scp")[: size * (args.profile + 1)]
    wavs = [torch.from_numpy(read_audio(e)) for _, e in entries]
    batches = [pad(wavs[i : i + size]) for i in range(0, len(wavs), size)]
    trainer.batch(*batches[0], 1, True)
    activities = [ProfilerActivity.CPU]
    if trainer.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with torch_profile(activities=activities) as prof:
        for x, lens in batches[1:]:
            trainer.batch(x, lens, 1, True)
    key = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    print(f"\nprofile: {args.profile} batches of {size} whole utterances, sorted by {key}")
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=40))


def timed(name: str, fn: Callable[[], list]) -> list:
    start = time.perf_counter()
    rows = fn()
    return rows + [(f"{name} wall", f"{time.perf_counter() - start:.1f} s")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    fixed = fix_mmap_threshold()  # as every scpc command does (scpc.cli.common.run)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    config = scpc_config.load(ROOT / "conf" / f"model.{args.model}.yaml")
    load_before = load_average()
    header = [
        (
            "model",
            f"{args.model} ({sum(p.numel() for p in PretrainModel(config, 1).parameters()) / 1e6:.2f} M params at F=1)",
        ),
        ("device / threads / amp", f"{device} / {torch.get_num_threads()} / {args.amp}"),
        ("torch", torch.__version__),
        ("load average at start", load_before),
        ("glibc mmap threshold", "fixed at 16 MiB (scpc.malloc)" if fixed else "default"),
    ]
    peaks = roofline.measure(device, args.quick)
    # the roofline of the arithmetic the run uses: float32 (GEMM or conv, the better), or
    # the GPU's bf16 GEMM under autocast
    amp16 = args.amp != "off" and device.type == "cuda"
    peak = peaks["gemm_bf16"] if amp16 else max(peaks["gemm"], peaks["conv1d"])
    flops = train_flops_per_audio_second(Trainer.build(config, device, args.amp))
    header += [
        (
            "roofline (measured now)",
            ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()) + " GFLOP/s",
        ),
        ("model FLOPs per audio second", f"{flops / 1e9:.2f} GFLOP (forward + backward)"),
    ]
    print_table("train_throughput", header)
    if args.profile:
        profile(Trainer.build(config, device, args.amp), args, config["training"])
        return 0
    if not args.skip_a:
        trainer = Trainer.build(config, device, args.amp)
        rows = timed("setting a", lambda: setting_a(trainer, args, config["training"], flops, peak))
        rows.append(("peak RSS (process)", f"{peak_rss_gb():.2f} GB"))
        if device.type == "cuda":
            rows.append(("peak GPU memory", f"{torch.cuda.max_memory_allocated() / 1e9:.2f} GB"))
        print_table("a. whole utterances, as the reference (ref: ~4.9 audio-s/s, 3.5 GB)", rows)
        del trainer
    if not args.skip_c:
        trainer = Trainer.build(config, device, args.amp)
        rows = timed(
            "setting c",
            lambda: setting_a(trainer, args, config["training"], flops, peak, bucketed=True),
        )
        rss = f"{peak_rss_gb():.2f} GB" + (" (setting a's included)" if not args.skip_a else "")
        rows.append(("peak RSS (process)", rss))
        print_table("c. setting a's utterances in duration buckets (batch_seconds)", rows)
        del trainer
    if not args.skip_b:
        trainer = Trainer.build(config, device, args.amp)
        rows = timed("setting b", lambda: setting_b(trainer, args, flops, peak))
        print_table("b. random 2 s audio, as env.md section 7 (ref: 0.858 s/step)", rows)
    print_table("end", [("load average at end", load_average())])
    return 0


if __name__ == "__main__":
    sys.exit(main())
