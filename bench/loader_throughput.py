"""The training data path at scale: audio decoding + front-end + batching per data worker,
padding with and without length buckets, start-up time and memory for large data dirs.

1. Throughput: the mini training set (FLAC) read by scpc.data.audiodir_dataset with one torch
   thread (what one DataLoader worker has) and collated into batches of 8, for the raw, fbank-80
   and MFCC-13 front-ends; --rounds rounds interleaving the front-ends, medians. Also the
   whole DataLoader with --workers workers, for the total.
2. Padding ratio (frames computed / real frames, fbank-80 frames) of the mini training set:
   batches of 8 in random order, scpc's pooled length sort (batch_size 8), and --batch-seconds
   buckets.
3. Start-up and peak RSS for data dirs of 10k, 100k and 1M utterances (the mini corpus's
   entries repeated under new ids, utt2num_samples included as stage 1 writes it): a fresh
   process opens the dataset and plans an epoch of buckets; its wall time and peak RSS.
4. Shard streaming: shards (steps/make_shards.sh's format) of --stream-sizes utterances of
   the repeated data dirs; a fresh process streams every utterance (raw front-end, shuffle
   buffer 1000, in batches of 8); its peak RSS and rate, to show memory does not grow with
   the corpus.

  .venv/bin/python bench/loader_throughput.py [--quick] [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from benchlib import ROOT, ensure_mini_data, load_average, peak_rss_gb, print_table

from scpc.data.audiodir_dataset import AudioDirDataset
from scpc.data.batch_plan import bucketed_plan, epoch_plan, padding_ratio
from scpc.data.datadir import read_table
from scpc.data.featdir_dataset import collate
from scpc.data.loader import read_batches
from scpc.data.num_samples import num_samples
from scpc.frontend import load_frontend_config

FRONTENDS = ("raw", "fbank-80", "mfcc-13")
SCALE_DIR = Path("/tmp/bench_data/scale")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    p.add_argument("--utterances", type=int, default=216, help="per round and front-end")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the total")
    p.add_argument("--batch-seconds", type=float, default=80.0, help="bucket budget")
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--stream-sizes", type=int, nargs="*", default=[2_000, 20_000])
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.utterances, args.sizes, args.stream_sizes = 1, 16, [2000], [500]
    return args


def frontend(name: str) -> dict:
    return load_frontend_config(ROOT / "conf" / "feats" / f"{name}.json")


def one_worker_rate(ds: AudioDirDataset, count: int) -> float:
    """Audio seconds per wall second: read, front-end and collate ``count`` utterances in
    batches of 8 with one torch thread."""
    audio = 0.0
    tic = time.perf_counter()
    batches = [list(range(i, min(i + 8, count))) for i in range(0, count, 8)]
    for items in read_batches(ds, batches):
        collate(items)
        audio += sum(ds.num_samples[i] for _, _, i in items) / 16000
    return audio / (time.perf_counter() - tic)


def loader_rate(ds: AudioDirDataset, workers: int) -> float:
    batches = [list(range(i, min(i + 8, len(ds)))) for i in range(0, len(ds), 8)]
    tic = time.perf_counter()
    audio = 0.0
    for items in read_batches(ds, batches, workers):
        audio += sum(ds.num_samples[i] for _, _, i in items) / 16000
    return audio / (time.perf_counter() - tic)


def build_scaled(mini_train: Path, size: int) -> Path:
    """A data dir of ``size`` utterances: the mini entries repeated under new ids."""
    out = SCALE_DIR / str(size)
    if (out / ".complete").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    wav = list(read_table(mini_train / "wav.scp").items())
    spk = read_table(mini_train / "utt2spk")
    samples = num_samples(mini_train)
    with (
        open(out / "wav.scp", "w") as w,
        open(out / "utt2spk", "w") as u,
        open(out / "utt2num_samples", "w") as n,
    ):
        for k in range(size):  # ids sort in the order written
            utt, entry = wav[k % len(wav)]
            new = f"r{k:08d}-{utt}"
            w.write(f"{new} {entry}\n")
            u.write(f"{new} {spk[utt]}\n")
            n.write(f"{new} {samples[utt]}\n")
    (out / ".complete").touch()
    return out


STARTUP = """
import json, resource, sys, time
tic = time.perf_counter()
from scpc.data.audiodir_dataset import AudioDirDataset
from scpc.data.batch_plan import bucketed_plan
ds = AudioDirDataset(sys.argv[1], json.loads(sys.argv[2]))
plan = bucketed_plan(ds.lengths, float(sys.argv[3]), seed=0, epoch=0)
print(json.dumps({"seconds": time.perf_counter() - tic, "utterances": len(ds),
                  "batches": len(plan),
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


STREAM = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from scpc.data.shards import ShardBatches, read_shard_list
tic = time.perf_counter()
stream = ShardBatches(read_shard_list(sys.argv[1]), {"name": "raw"}, batch_size=8, buffer=1000)
n = seconds = 0
for _, _, items in stream:
    n += len(items)
    seconds += sum(len(f) for f, _, _ in items) / 16000
print(json.dumps({"utterances": n, "rate": seconds / (time.perf_counter() - tic),
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def stream_rss(data: Path) -> dict:
    from scpc.data.shards import write_shards

    shards = SCALE_DIR / f"shards-{data.name}"
    if not (shards / "shards.json").is_file():
        write_shards(data, shards, shard_seconds=3600)
    proc = subprocess.run(
        [sys.executable, "-c", STREAM, str(shards)], capture_output=True, text=True, check=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    return json.loads(proc.stdout)


def startup(data: Path, budget_frames: float) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", STARTUP, str(data), json.dumps(frontend("fbank-80")),
         str(budget_frames)],
        capture_output=True, text=True, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # what a DataLoader worker has
    data = ensure_mini_data()
    train = data / "train"
    print(f"load average before: {load_average()}; torch {torch.__version__}, 1 thread")

    datasets = {name: AudioDirDataset(train, frontend(name)) for name in FRONTENDS}
    rates: dict[str, list[float]] = {name: [] for name in FRONTENDS}
    for _ in range(args.rounds):
        for name, ds in datasets.items():
            rates[name].append(one_worker_rate(ds, min(args.utterances, len(ds))))
    rows = [
        (f"{name} (1 worker)", f"{statistics.median(r):8.0f} audio-s/s  (rounds: "
         + ", ".join(f"{x:.0f}" for x in r) + ")")
        for name, r in rates.items()
    ]  # fmt: skip
    for name in ("raw", "fbank-80"):
        rate = loader_rate(datasets[name], args.workers)
        rows.append((f"{name} ({args.workers} workers, DataLoader)", f"{rate:8.0f} audio-s/s"))
    print_table("Audio decoding + front-end + batching (mini train, FLAC)", rows)

    lengths = datasets["fbank-80"].lengths
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(lengths), generator=g).tolist()
    random_batches = [order[i : i + 8] for i in range(0, len(order), 8)]
    budget = args.batch_seconds / 0.01
    print_table(
        "Padding ratio (computed / real frames), fbank-80 frames of mini train",
        [
            ("batches of 8, random order", f"{padding_ratio(random_batches, lengths):.3f}"),
            ("batch_size 8, pooled sort", f"{padding_ratio(epoch_plan(lengths, 8, 1, 0, 0), lengths):.3f}"),
            (f"batch_seconds {args.batch_seconds:g}", f"{padding_ratio(bucketed_plan(lengths, budget, 0, 0), lengths):.3f}"),
        ],
    )  # fmt: skip

    rows = []
    for size in args.sizes:
        scaled = build_scaled(train, size)
        r = startup(scaled, budget)
        rows.append(
            (f"{size:>9,} utterances", f"start-up {r['seconds']:6.2f} s, peak RSS "
             f"{r['rss_gb']:.2f} GB, {r['batches']:,} batches")
        )  # fmt: skip
    if rows:
        print_table("Start-up (open the data dir, plan an epoch of buckets), fresh process", rows)

    rows = []
    for size in args.stream_sizes:
        r = stream_rss(build_scaled(train, size))
        rows.append(
            (f"{r['utterances']:>9,} utterances", f"peak RSS {r['rss_gb']:.2f} GB, "
             f"{r['rate']:6.0f} audio-s/s (1 reader, raw)")
        )  # fmt: skip
    if rows:
        print_table("Shard streaming (shards of 1 h, shuffle buffer 1000), fresh process", rows)
    print(f"\nthis process's peak RSS {peak_rss_gb():.2f} GB; load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
