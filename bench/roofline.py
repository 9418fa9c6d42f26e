"""The machine's float32 roofline at the benchmark's thread count, and model FLOPs.

Measures, in this process, the GFLOP/s of a float32 GEMM (square matmuls) and of conv1d
shaped like cpc.small's encoder layers (the ops that dominate scpc's models), as the median
of timed repeats after warm-up. Other bench scripts import :func:`measure` and
:func:`flops_per_audio_second` (``torch.utils.flop_counter``: matmuls, convolutions,
attention; elementwise work is not counted) and report the fraction of the roofline they
reach beside audio-s per wall-s.

  .venv/bin/python bench/roofline.py [--threads 2] [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from benchlib import load_average, print_table

# (batch, in channels, out channels, kernel, stride, input frames): cpc.small's first and
# a later encoder conv on 8 utterances of 2 s
CONV_SHAPES = ((8, 1, 256, 10, 5, 32000), (8, 256, 256, 4, 2, 1600))


def _timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn`` after two warm-up calls."""
    times = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - tic)
    return statistics.median(times)


def gemm_gflops(device: torch.device, n: int, dtype=torch.float32, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _timed(lambda: a @ b, device, repeats) / 1e9


def conv1d_gflops(device: torch.device, shape: tuple, repeats: int = 10) -> float:
    batch, cin, cout, k, stride, frames = shape
    x = torch.randn(batch, cin, frames, device=device)
    w = torch.randn(cout, cin, k, device=device)
    out = (frames - k) // stride + 1
    flops = 2 * batch * cout * out * cin * k
    with torch.no_grad():
        return (
            flops
            / _timed(lambda: torch.nn.functional.conv1d(x, w, stride=stride), device, repeats)
            / 1e9
        )


def measure(device: torch.device | str = "cpu", quick: bool = False) -> dict[str, float]:
    """GFLOP/s: ``gemm`` (float32, the best of two sizes), ``conv1d`` (cpc.small's shapes,
    the better one), and on a GPU ``gemm_bf16``."""
    device = torch.device(device)
    repeats = 3 if quick else 10
    sizes = (512, 1024) if device.type == "cpu" else (4096, 8192)
    out = {"gemm": max(gemm_gflops(device, n, repeats=repeats) for n in sizes)}
    out["conv1d"] = max(conv1d_gflops(device, s, repeats) for s in CONV_SHAPES)
    if device.type == "cuda":
        out["gemm_bf16"] = max(gemm_gflops(device, n, torch.bfloat16, repeats) for n in sizes)
    return out


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (forward, or forward and backward if ``fn`` runs it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def flops_per_audio_second(fn: Callable[[], object], audio_seconds: float) -> float:
    return count_flops(fn) / audio_seconds


def fraction(flops_per_audio_s: float, audio_s_per_s: float, peak_gflops: float) -> str:
    """Achieved GFLOP/s and its share of ``peak_gflops``, as a table cell."""
    achieved = flops_per_audio_s * audio_s_per_s / 1e9
    return f"{achieved:6.1f} GFLOP/s = {100 * achieved / peak_gflops:5.1f} % of {peak_gflops:.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [("load average at start", load_average()), ("threads", str(args.threads))]
    peaks = measure(args.device, args.quick)
    rows += [
        (f"{k} (float32)" if k != "gemm_bf16" else k, f"{v:8.1f} GFLOP/s") for k, v in peaks.items()
    ]
    for shape in CONV_SHAPES:
        rows.append(
            (f"conv1d {shape}", f"{conv1d_gflops(torch.device(args.device), shape):8.1f} GFLOP/s")
        )
    rows.append(("load average at end", load_average()))
    print_table(f"roofline on {args.device}", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
