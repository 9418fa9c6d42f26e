"""What the job launchers and the preemption path cost.

    .venv/bin/python bench/launcher_overhead.py            # ~1 min (plus Slurm, when reachable)
    .venv/bin/python bench/launcher_overhead.py --quick

a. utils/run_local.sh: wall time of a JOB=1:N array of `true` (one log per job), per job, next
   to a plain bash loop running the same N commands.
b. utils/slurm.sh (only when sbatch reaches a Slurm, e.g. after
   `eval $(tests/slurm/local_cluster.sh start /tmp/slurm)` as root): submission to the
   launcher's exit for one job and for an array, with the default polling (SCPC_POLL_MAX=30)
   and with SCPC_POLL_MAX=1, next to `sbatch --wait` of the same array (Slurm's own time).
c. Stopping on a signal: the time scpc-train's save of last.ckpt takes (the model, Adam's
   state and the progress, written atomically) for cpc.small and spiral.base, which bounds
   how much warning (conf/slurm.conf's --signal=B:USR1@300) a job needs; and the per-step cost
   of agreeing on the stop across 2 gloo processes (one all-reduce of one integer).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from benchlib import ROOT, load_average, print_table

from scpc import config as cfg
from scpc.frontend import frontend_from_config, load_frontend_config
from scpc.io import save_torch
from scpc.train.distributed import Dist, any_flag
from scpc.train.model import PretrainModel
from scpc.train.schedule import make_optimizer


def timed(args: list[str], env: dict[str, str] | None = None) -> float:
    tic = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - tic


def local_launcher(n: int, work: Path) -> list[tuple[str, str]]:
    loop = timed(["bash", "-c", f"for i in $(seq {n}); do true > {work}/loop.$i.log; done"])
    launcher = timed(
        [str(ROOT / "utils" / "run_local.sh"), f"JOB=1:{n}", str(work / "l.JOB.log"), "true"]
    )
    return [
        (f"bash loop, {n} x true", f"{loop:.2f} s"),
        (
            f"run_local.sh JOB=1:{n} true",
            f"{launcher:.2f} s ({1000 * (launcher - loop) / n:.1f} ms a job more)",
        ),
    ]


def slurm_launcher(work: Path, repeats: int) -> list[tuple[str, str]]:
    rows = []
    for jobs in (1, 8):  # Slurm alone: sbatch waiting for the array itself
        sbatch = ["sbatch", "--wait", f"--array=1-{jobs}", "-o", "/dev/null", "--wrap", "true"]
        best = min(timed(sbatch) for _ in range(repeats))
        rows.append((f"sbatch --wait --array=1-{jobs} true", f"{best:.2f} s (best of {repeats})"))
    for poll in ("30", "1"):
        env = dict(os.environ, SCPC_POLL_MAX=poll)
        for jobs in (1, 8):
            best = min(
                timed(
                    [
                        str(ROOT / "utils" / "slurm.sh"),
                        f"JOB=1:{jobs}",
                        str(work / f"s{poll}.JOB.log"),
                        "true",
                    ],
                    env,
                )
                for _ in range(repeats)
            )
            rows.append(
                (
                    f"slurm.sh JOB=1:{jobs} true, SCPC_POLL_MAX={poll}",
                    f"{best:.2f} s (best of {repeats})",
                )
            )
    return rows


def save_time(model: str, work: Path, repeats: int) -> tuple[str, str]:
    config = cfg.load(ROOT / "conf" / f"model.{model}.yaml")
    frontend = load_frontend_config(ROOT / "conf" / "feats" / f"{config['feat_type']}.json")
    net = PretrainModel(config, frontend_from_config(frontend).feat_size, 1)
    opt = make_optimizer(net.parameters(), config["training"])
    for p in net.parameters():  # Adam's moments exist after a first step
        p.grad = torch.zeros_like(p)
    opt.step()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "progress": {"step": 1}}
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        save_torch(state, work / "last.ckpt")
        best = min(best, time.perf_counter() - tic)
    size = (work / "last.ckpt").stat().st_size / 1e6
    params = sum(p.numel() for p in net.parameters()) / 1e6
    return (f"save last.ckpt, {model} ({params:.1f}M parameters)", f"{best:.2f} s, {size:.0f} MB")


def _agree(rank: int, steps: int, port: int, out: mp.SimpleQueue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    d = Dist(rank, 2, torch.device("cpu"))
    for _ in range(20):
        any_flag(0, d)
    dist.barrier()
    tic = time.perf_counter()
    for _ in range(steps):
        any_flag(0, d)
    if rank == 0:
        out.put((time.perf_counter() - tic) / steps)
    dist.destroy_process_group()


def agreement_cost(steps: int) -> tuple[str, str]:
    out = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(
        _agree, args=(steps, 29000 + os.getpid() % 1000, out), nprocs=2, start_method="spawn"
    )
    return ("stop agreement, 2 gloo processes", f"{1e6 * out.get():.0f} us a step")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = ap.parse_args()
    print(f"load average at start: {load_average()}")
    work = Path(tempfile.mkdtemp(prefix="bench_launchers."))
    try:
        n = 20 if args.quick else 200
        print_table("a. local launcher", local_launcher(n, work))
        slurm_ok = (
            shutil.which("sbatch")
            and subprocess.run(["sinfo"], capture_output=True).returncode == 0
        )
        if slurm_ok:
            print_table("b. Slurm launcher", slurm_launcher(work, 1 if args.quick else 3))
        else:
            print("\nb. Slurm launcher: skipped (no Slurm answers sinfo)")
        torch.set_num_threads(2)
        models = ["cpc.mini"] if args.quick else ["cpc.small", "spiral.base"]
        rows = [save_time(m, work, 1 if args.quick else 3) for m in models]
        rows.append(agreement_cost(100 if args.quick else 2000))
        print_table("c. stopping on a signal", rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
