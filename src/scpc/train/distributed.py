"""Process-group set-up (gloo on CPU, NCCL on GPU) and small helpers.

A process finds its place in the group from torchrun's variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or, when srun started it as one task of several, from
Slurm's (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, the step's first node, a port
derived from the job id), so that ``srun scpc-train ...`` in any batch script trains with DDP.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from scpc.errors import ScpcError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ScpcError(f"device {name} requested but torch sees no CUDA GPU")
    return torch.device(name)


def first_host(nodelist: str) -> str:
    """The first host of a Slurm hostlist: "gpu[07-09,12],cpu1" -> "gpu07"."""
    m = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", nodelist.strip())
    if not m or not m.group(1) and not m.group(2):
        raise ScpcError(f"cannot read the Slurm node list '{nodelist}'")
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0]


def slurm_port(job_id: str) -> int:
    """A rendezvous port that differs between jobs sharing a node (utils/launcher_lib.sh
    exports the same for the distributed jobs it starts)."""
    return 20000 + int(job_id) % 20000


def slurm_environment(env: Mapping[str, str]) -> dict[str, str]:
    """torchrun's variables for a process that srun started as one of several tasks.

    Empty when torchrun's variables are already there, or when this is not a task of a
    multi-task srun step (a batch script's own shell has no SLURM_STEP_NUM_TASKS).
    """
    if "WORLD_SIZE" in env or int(env.get("SLURM_STEP_NUM_TASKS", "1")) <= 1:
        return {}
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
    if "MASTER_ADDR" not in env and not nodes:
        raise ScpcError("srun task without SLURM_STEP_NODELIST: cannot find the DDP master")
    return {
        "RANK": env["SLURM_PROCID"],
        "WORLD_SIZE": env["SLURM_STEP_NUM_TASKS"],
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(nodes or ""),
        "MASTER_PORT": env.get("MASTER_PORT") or str(slurm_port(env.get("SLURM_JOB_ID", "0"))),
    }


def setup(device_name: str) -> Dist:
    """Join the process group of torchrun or srun if launched by one; otherwise one process."""
    os.environ.update(slurm_environment(os.environ))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world == 1:
        return Dist(0, 1, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), world, device)


def all_sum(values: list[float], d: Dist) -> list[float]:
    if d.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.world_size > 1:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def any_flag(value: int, d: Dist) -> int:
    """The largest of every process's value (one process stops: every process stops)."""
    if d.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.long, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def merge_positions(stream: dict[str, dict[str, int]], d: Dist) -> dict[str, dict[str, int]]:
    """Every process's shard-stream position (disjoint readers and ranks) in one dict."""
    if d.world_size == 1:
        return stream
    parts: list = [None] * d.world_size
    dist.all_gather_object(parts, stream)
    merged: dict[str, dict[str, int]] = {}
    for part in parts:
        for key, values in part.items():
            merged.setdefault(key, {}).update(values)
    return merged
