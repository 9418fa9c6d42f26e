"""scpc against the reference scpc (sdrobert/scpc), side by side in one process.

The reference's model code (its ``src/scpc/modules.py``, which imports only torch and numpy;
export it from the reference's repository as bench/README.md says, never into this one) runs
the reference's cpc.small: ConvEncoder(1, 256, channel norm), a 2-layer LSTM 256 over packed
sequences, the feed-forward predictor of 12 x 256 with prediction dropout 0.5, InfoNCE with
128 negatives per anchor; its input is int16-scaled raw audio, as its feature dirs hold it.
scpc runs conf/model.cpc.small.yaml. Both train with Adam 2e-4, a step every 3 batches.

Training: the first 64 utterances of the mini training set in batches of 4 in wav.scp order
(the reference's setting), each system an epoch at a time, interleaved (ref, scpc, scpc
buckets, then reversed), --epochs rounds; the first round is warm-up. "scpc buckets" is
the same utterances in duration buckets of the same mean padded audio per batch. Reported:
median over rounds of real audio seconds per wall second, and ratios to the reference.

Extraction: the 72 utterances of the mini test set, one at a time (as the reference's
scpc-a2r runs them) through each system's encoder in inference mode, interleaved A/B,
--repeats rounds; model time only (reading and writing files excluded for both).

Lightning's per-step overhead of the reference's trainer and its CLI start-up are not in
these figures, so they favour the reference.

  .venv/bin/python bench/peer_reference.py --ref-src /tmp/refsrc/src/scpc [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchlib import ROOT, ensure_mini_data, load_average, peak_rss_gb, print_table, read_scp
from extract_rtf import make_checkpoint
from train_throughput import Trainer, pad

from scpc import config as scpc_config
from scpc.audio import SAMPLE_RATE, read_audio
from scpc.data.batch_plan import bucketed_plan
from scpc.models.inference import encode, load_model, pad_for

INT16 = 32768.0


def reference_modules(src: Path):
    if not (src / "modules.py").is_file():
        raise SystemExit(f"{src}: no modules.py (export the reference's src/scpc there)")
    sys.path.insert(0, str(src))
    import modules  # the reference's

    return modules


class RefTrainer:
    """The reference's cpc.small pretrain_step (latent, context, CPC loss) and Adam."""

    def __init__(self, ref) -> None:
        torch.manual_seed(0)
        self.latent = ref.ConvEncoder(1, 256, "channel")
        self.context = ref.RecurrentEncoder(256, 256, 2, "lstm")
        penc = ref.FeedForwardEncoder(256, 12 * 256, "none", False, 0.0)
        self.loss = ref.CPCLossNetwork(256, 256, 12, 128, penc, None, 0.0, 0, 0, 0.0, 0.5)
        params = [
            *self.latent.parameters(),
            *self.context.parameters(),
            *self.loss.parameters(),
        ]
        self.optimizer = torch.optim.Adam(params, lr=2e-4)
        self.encoder = ref.EncoderSequence(self.latent, self.context)

    def batch(self, wav: torch.Tensor, lens: torch.Tensor, accumulate: int, step: bool) -> float:
        start = time.perf_counter()
        feats = (wav * INT16).unsqueeze(-1)
        latent, llens = self.latent(feats, lens)
        context, clens = self.context(latent, llens)
        (self.loss(latent, context, clens) / accumulate).backward()
        if step:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def run_epoch(trainer, batches, accumulate: int) -> float:
    """Real audio seconds per wall second over one pass."""
    audio = wall = 0.0
    for i, (x, lens) in enumerate(batches):
        step = (i + 1) % accumulate == 0 or i == len(batches) - 1
        wall += trainer.batch(x, lens, accumulate, step)
        audio += float(lens.sum()) / SAMPLE_RATE
    return audio / wall


def training(args, ref) -> list[tuple[str, str]]:
    data = ensure_mini_data() / "train"
    size, accumulate, count = 4, 3, 8 if args.quick else 64
    wavs = [torch.from_numpy(read_audio(e)) for _, e in read_scp(data / "wav.scp")[:count]]
    plain = [pad(wavs[i : i + size]) for i in range(0, len(wavs), size)]
    lengths = [len(w) for w in wavs]
    padded = sum(max(lengths[i : i + size]) * size for i in range(0, len(wavs), size))
    plan = bucketed_plan(lengths, padded / len(plain), seed=0, epoch=0)
    buckets = [pad([wavs[i] for i in b]) for b in plan]
    config = scpc_config.load(ROOT / "conf" / "model.cpc.small.yaml")
    systems = {
        "reference": (RefTrainer(ref), plain),
        "scpc": (Trainer.build(config, torch.device("cpu"), "off"), plain),
        "scpc buckets": (Trainer.build(config, torch.device("cpu"), "off"), buckets),
    }
    rates: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    for r in range(args.epochs):
        for name in names if r % 2 == 0 else names[::-1]:
            trainer, batches = systems[name]
            rate = run_epoch(trainer, batches, accumulate)
            print(f"round {r} {name}: {rate:.2f} audio-s/s", flush=True)
            if r:  # round 0 warms up
                rates[name].append(rate)
    ref_rate = statistics.median(rates["reference"])
    rows = [
        ("data", f"{count} utterances, {len(plain)} batches of {size}; buckets: {len(buckets)}")
    ]
    for name, values in rates.items():
        med = statistics.median(values)
        spread = f"{min(values):.2f}-{max(values):.2f}"
        rows.append((name, f"{med:6.2f} audio-s/s (rounds {spread})  {med / ref_rate:4.2f}x ref"))
    rows.append(("peak RSS (all three, one process)", f"{peak_rss_gb():.2f} GB"))
    return rows


def extraction(args, ref) -> list[tuple[str, str]]:
    data = ensure_mini_data() / "test"
    entries = read_scp(data / "wav.scp")[: 4 if args.quick else None]
    wavs = [read_audio(e) for _, e in entries]
    audio = sum(len(w) for w in wavs) / SAMPLE_RATE
    reference = RefTrainer(ref).encoder.eval()
    ckpt = Path(tempfile.mkdtemp()) / "best.ckpt"
    make_checkpoint("cpc.small", ckpt)  # what scpc-a2r loads: front-end + encoder
    ours, _ = load_model(str(ckpt), "cpu")

    def run_ref() -> None:
        with torch.inference_mode():
            for w in wavs:
                x = torch.from_numpy(w)[None, :, None] * INT16
                reference(x, torch.tensor([len(w)]))

    def run_ours() -> None:
        for w in wavs:
            encode(ours, [w], "-1", "cpu")

    pad_for(ours, wavs[:1])  # imports and first-call set-up outside the timing
    times: dict[str, list[float]] = {"reference": [], "scpc": []}
    for r in range(args.repeats + 1):
        for name, fn in (("reference", run_ref), ("scpc", run_ours))[:: 1 if r % 2 == 0 else -1]:
            tic = time.perf_counter()
            fn()
            if r:
                times[name].append(time.perf_counter() - tic)
    ref_rate = audio / statistics.median(times["reference"])
    rows = [("data", f"{len(wavs)} utterances, {audio:.1f} s, one at a time")]
    for name, values in times.items():
        rate = audio / statistics.median(values)
        rows.append((name, f"{rate:6.1f}x real time  {rate / ref_rate:4.2f}x ref"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ref-src", type=Path, default=Path("/tmp/refsrc/src/scpc"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="training rounds (first: warm-up)")
    p.add_argument("--repeats", type=int, default=3, help="extraction rounds after a warm-up")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-extraction", action="store_true")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = 2, 1
    torch.set_num_threads(args.threads)
    ref = reference_modules(args.ref_src)
    print_table(
        "peer_reference",
        [("threads", str(args.threads)), ("load average at start", load_average())],
    )
    if not args.skip_extraction:
        print_table("extraction (cpc.small encoder, model time)", extraction(args, ref))
    if not args.skip_training:
        print_table("training (cpc.small, batches of 4 whole utterances)", training(args, ref))
    print_table("end", [("load average at end", load_average())])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
