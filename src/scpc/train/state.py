"""``last.ckpt``: the resumable state of a trainer, one implementation for all three.

A state holds the trainer's modules (model, optimiser, gradient scaler: anything with
``state_dict``/``load_state_dict``), its position (``progress``: epoch, batch, step, running
sums), the identity a resumed run must share (the config, the data, the upstream), and the
global torch RNG. It is written atomically at step boundaries only, so a run killed at any
moment resumes from the last boundary and repeats what an uninterrupted run does.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from scpc.errors import ScpcError
from scpc.io import load_torch, save_torch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class TrainingState:
    """The ``last.ckpt`` of one trainer: ``fmt`` names its layout, ``what`` it in errors."""

    def __init__(self, path: str | os.PathLike, fmt: str, what: str) -> None:
        self.path, self.fmt, self.what = Path(path), fmt, what

    def exists(self) -> bool:
        return self.path.is_file()

    def save(
        self,
        modules: dict[str, Stateful],
        progress: dict[str, Any],
        identity: dict[str, Any],
        rng: bool = True,
    ) -> None:
        payload: dict[str, Any] = {"format": self.fmt, **identity, "progress": progress}
        payload.update({name: module.state_dict() for name, module in modules.items()})
        if rng:
            payload["rng"] = torch.get_rng_state()
        save_torch(payload, self.path)

    def restore(
        self,
        modules: dict[str, Stateful],
        identity: dict[str, tuple[Any, str]],
        device: torch.device | str = "cpu",
        upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """Load the modules and the RNG and return the saved progress (None when there is no
        state yet). ``identity`` maps a saved key to (the value this run has, what a mismatch
        means): any mismatch is an error and nothing is loaded. ``upgrade`` rewrites a state
        saved by an older scpc (renamed config keys) before the checks."""
        if not self.exists():
            return None
        state = load_torch(self.path, self.fmt, self.what, device)
        if upgrade is not None:
            state = upgrade(state)
        for key, (expected, problem) in identity.items():
            if state[key] != expected:
                raise ScpcError(f"{self.path}: {problem}")
        for name, module in modules.items():
            module.load_state_dict(state[name])
        if "rng" in state:
            torch.set_rng_state(state["rng"].cpu())
        return state["progress"]


def git_commit() -> str:
    """The scpc checkout's commit, for provenance ('' outside a git checkout)."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except OSError:
        return ""
