"""Speed of the CTC baseline (scpc-baseline): training steps and decoding.

(1) Training steps (forward, CTC, backward, AdamW) of the baseline model at the mini config's
size (128-dim input, 256 units) and at the real config's (256-dim input as cpc.small's,
1024 units, 2001 outputs) on batches of random representations of a given duration.
(2) Decoding of synthetic CTC outputs shaped like a trained model's (a piece every few
steps, blanks between, the other classes about 15 nats below the best with noise; the table
gives how many classes fall within the decoder's 10-nat window, the number beam search
tries per prefix and frame) over 2001 classes: greedy, beam search of width 10 and 100, and
width 10 with a 3-gram LM, in utterances and audio seconds per second of one process
(decoding scales with --nj). Beam search cost grows with that count: an undertrained model's
flat outputs cost more. Beam search runs side by side with the pure-Python search it replaced
(tests/ctc_reference.py), interleaved over rounds (medians), and the hypotheses of the two are
compared utterance by utterance.

  .venv/bin/python bench/baseline_speed.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import load_average, peak_rss_gb, print_table

from scpc.baseline.model import BaselineModel
from scpc.eval.ctc_decode import beam_search, greedy_decode
from scpc.eval.ngram import NgramLM
from scpc.models.inference import resolve_device
from scpc.nn.amp import amp_dtype, autocast
from scpc.nn.ctc import ctc_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ctc_reference import reference_beam_search  # noqa: E402

STEP_SECONDS = 0.03  # one CTC step: 3 stacked 10 ms frames


def train_step_time(channels, hidden, classes, batch, seconds, steps, device, amp) -> float:
    m = BaselineModel(channels, classes, hidden_size=hidden, num_layers=2, stack=3, dropout=0.1)
    m.to(device)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    frames = int(seconds * 100)
    x, lens = torch.randn(batch, frames, channels), torch.full((batch,), frames)
    targets = [[random.randrange(classes - 1) for _ in range(frames // 12)] for _ in range(batch)]
    dtype = amp_dtype(amp, device)
    times = []
    for _ in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        with autocast(device, dtype):
            logp, olens = m(x.to(device), lens.to(device))
        loss = ctc_loss(logp.float(), olens, targets, blank=classes - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - tic)
    return float(np.median(times[1:]))


def fake_outputs(rng, seconds: float, classes: int) -> np.ndarray:
    """(T, V) log-probabilities: a piece every 2-4 steps, blanks between."""
    t_len = int(seconds / STEP_SECONDS)
    logits = rng.normal(0, 1.5, size=(t_len, classes))
    blank = classes - 1
    t = 0
    while t < t_len:
        logits[t, rng.integers(blank)] += rng.uniform(14, 20)
        gap = int(rng.integers(2, 5))
        logits[t + 1 : t + gap, blank] += 18
        t += gap
    logits -= logits.max(1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="training steps: cpu, cuda[:N] or auto")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off", help="autocast")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(0)
    steps = 2 if args.quick else 5
    device = resolve_device(args.device)
    rows = [("load average at start", load_average()), ("threads", str(args.threads))]
    rows.append(("training device / amp", f"{device} / {args.amp}"))
    for name, (c, h, v, b, s) in {
        "mini size (128 in, 256 units, 65 out), 16 x 4 s": (128, 256, 65, 16, 4.0),
        "real size (256 in, 1024 units, 2001 out), 8 x 4 s": (256, 1024, 2001, 8, 4.0),
    }.items():
        sec = train_step_time(c, h, v, b, s, steps, device, args.amp)
        rows.append((f"train step, {name}", f"{1000 * sec:.0f} ms ({b * s / sec:.1f} audio s/s)"))

    rng = np.random.default_rng(0)
    n_utts, seconds = (3, 4.0) if args.quick else (20, 8.0)
    outputs = [fake_outputs(rng, seconds, 2001) for _ in range(n_utts)]
    window = np.mean([(lp >= lp.max(1, keepdims=True) - 10).sum(1).mean() for lp in outputs])
    rows.append(("decode: classes within 10 nats of a frame's best", f"{window:.1f} on average"))
    vocab = [f"▁w{i}" if i % 3 == 0 else f"p{i}" for i in range(2000)] + ["<blank>"]
    words = [[f"w{3 * rng.integers(666)}" for _ in range(12)] for _ in range(2000)]
    lm = NgramLM.train(words, 3)
    lm_kw = dict(lm=lm, lm_weight=0.5, word_bonus=1.0, vocab=vocab, prune=10.0)
    rounds = 1 if args.quick else 3
    tic = time.perf_counter()
    beam_search(outputs[0][:10], 10, 2000, **lm_kw)  # compiles, or loads the on-disk cache
    rows.append(
        ("beam search: first call (compile or cache load)", f"{time.perf_counter() - tic:.2f} s")
    )
    decoders = {
        "greedy": (lambda lp: greedy_decode(lp, 2000), None),
        "beam 10": (
            lambda lp: beam_search(lp, 10, 2000, prune=10.0),
            lambda lp: reference_beam_search(lp, 10, 2000, prune=10.0),
        ),
        "beam 100": (
            lambda lp: beam_search(lp, 100, 2000, prune=10.0),
            lambda lp: reference_beam_search(lp, 100, 2000, prune=10.0),
        ),
        "beam 10 + 3-gram LM": (
            lambda lp: beam_search(lp, 10, 2000, **lm_kw),
            lambda lp: reference_beam_search(lp, 10, 2000, **lm_kw),
        ),
    }

    def timed(fn) -> tuple[float, list]:
        tic = time.perf_counter()
        hyps = [fn(lp) for lp in outputs]
        return time.perf_counter() - tic, hyps

    audio = n_utts * seconds
    for name, (fn, ref) in decoders.items():
        ours, theirs, same = [], [], True
        for _ in range(rounds):  # interleaved A/B
            sec, hyps = timed(fn)
            ours.append(sec)
            if ref is not None:
                sec, ref_hyps = timed(ref)
                theirs.append(sec)
                same = same and hyps == ref_hyps
        sec = statistics.median(ours)
        text = f"{n_utts / sec:.1f} utt/s ({audio / sec:.0f} audio s/s)"
        if ref is not None:
            ref_sec = statistics.median(theirs)
            text += (
                f"; pure Python {audio / ref_sec:.0f} audio s/s: {ref_sec / sec:.1f}x,"
                f" hypotheses {'identical' if same else 'DIFFERENT'}"
            )
        rows.append((f"decode, {name}, {n_utts} x {seconds:g} s, 2001 classes", text))
    rows.append(("peak RSS", f"{peak_rss_gb():.2f} GB"))
    rows.append(("load average at end", load_average()))
    print_table("CTC baseline speed (CPU)", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
