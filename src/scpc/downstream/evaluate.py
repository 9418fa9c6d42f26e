"""Scoring a saved probe (``scpc-superb eval``): its upstream, featurizer and head on one
split of its config, or on another data dir."""

from __future__ import annotations

import os
from pathlib import Path

from scpc.downstream.config import upgrade_comparable
from scpc.downstream.probe import build_probe, load_probe_file
from scpc.downstream.runner import Runner
from scpc.downstream.tasks import make_task
from scpc.errors import ScpcError
from scpc.models.checkpoint import checkpoint_id
from scpc.models.inference import resolve_device


def evaluate_probe(
    probe_path: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    upstream_path: str | os.PathLike | None = None,
    device: str = "auto",
    root: str | os.PathLike = ".",
    quiet: bool = False,
) -> dict[str, float]:
    """Scores of a saved probe (dev-best.ckpt) on one split of its config, or on ``data_dir``."""
    import yaml

    payload = load_probe_file(probe_path)
    task = make_task(payload["task"])
    task.set_state(payload["task_state"])
    cfg = yaml.safe_load(upgrade_comparable(payload["config"]))
    cfg["train"]["device"] = device
    upstream_path = upstream_path or payload["upstream_path"]
    if checkpoint_id(upstream_path) != payload["upstream_id"]:
        raise ScpcError(f"{upstream_path}: not the upstream checkpoint {probe_path} was trained on")
    dev = resolve_device(device)
    probe = build_probe(task, cfg, upstream_path, dev)
    probe.load_trainable_state(payload)
    dirs = {k: str(v if Path(v).is_absolute() else Path(root) / v) for k, v in cfg["data"].items()}
    if data_dir is not None:
        if split not in dirs:
            raise ScpcError(
                f"{probe_path}: its config has no data.{split} to replace with {data_dir}"
            )
        dirs[split] = str(data_dir)
    # load() relearns labels from the training data; the saved ones are put back after it
    examples = task.load(dirs, cfg["task"]).get(split)
    if not examples:
        raise ScpcError(f"{probe_path}: task {task.name} has no {split} split")
    task.set_state(payload["task_state"])
    runner = Runner(
        task,
        cfg=cfg,
        probe=probe,
        splits={split: examples},
        dirs=dirs,
        device=dev,
        cache=None,
        quiet=quiet,
    )
    scores, _ = runner.evaluate(split)
    return scores
