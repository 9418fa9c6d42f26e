"""A SUPERB probe: the upstream, the featurizer and the task's head, and its checkpoint
(``dev-best.ckpt``: the trainable parts with the config, task state and scores)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scpc.config import Config
from scpc.downstream.task import Task
from scpc.downstream.upstream import Featurizer, TableUpstream, Upstream, select_layers
from scpc.errors import ScpcError
from scpc.io import load_torch
from scpc.kaldi_tables import is_scp
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint
from scpc.models.inference import layer_sizes
from scpc.train.seeds import mix

PROBE_FORMAT = "scpc-superb-probe-1"


class Probe(nn.Module):
    """Upstream, featurizer and head: what a SUPERB checkpoint holds."""

    def __init__(
        self, upstream: Upstream | TableUpstream, featurizer: Featurizer, head: nn.Module
    ) -> None:
        super().__init__()
        self.upstream, self.featurizer, self.head = upstream, featurizer, head

    def trainable_state(self) -> dict[str, Any]:
        return {
            "featurizer": self.featurizer.state_dict(),
            "head": self.head.state_dict(),
            "upstream": self.upstream.model.state_dict() if self.upstream.finetune else None,
        }

    def load_trainable_state(self, state: dict[str, Any]) -> None:
        self.featurizer.load_state_dict(state["featurizer"])
        self.head.load_state_dict(state["head"])
        if state.get("upstream") is not None:
            self.upstream.model.load_state_dict(state["upstream"])


class TrainableParts:
    """What a probe trains (featurizer, head, and a fine-tuned upstream) as one stateful
    object, for the trainer's state."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def state_dict(self) -> dict[str, Any]:
        return self.probe.trainable_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.probe.load_trainable_state(state)


def build_probe(
    task: Task, cfg: Config, upstream_path: str | os.PathLike, device: torch.device
) -> Probe:
    """The probe of a config on an upstream: an inference checkpoint, or a Kaldi feats.scp of
    precomputed features (frozen, one layer)."""
    finetune = cfg["upstream"]["finetune"]
    upstream: Upstream | TableUpstream
    if is_scp(upstream_path):
        if finetune:
            raise ScpcError(f"{upstream_path}: precomputed features cannot be fine-tuned")
        upstream = TableUpstream(upstream_path)
        layers = select_layers(upstream.sizes, cfg["featurizer"]["layer"])  # [0], or an error
    else:
        model = load_inference_checkpoint(upstream_path).to(device)
        layers = select_layers(layer_sizes(model, device), cfg["featurizer"]["layer"])
        upstream = Upstream(model, layers, finetune, device)
    torch.manual_seed(mix(cfg["train"]["seed"], "init"))
    featurizer = Featurizer(len(layers), cfg["featurizer"]["layer_norm"], cfg["featurizer"]["cmvn"])
    head = task.build_head(upstream.output_size, upstream.downsample_rate, cfg["task"])
    return Probe(upstream, featurizer, head).to(device)


def upstream_name(path: str | os.PathLike) -> str:
    """The model name in the checkpoint's provenance, else the file's stem; a feats.scp is
    named by its directory."""
    if is_scp(path):
        return Path(path).resolve().parent.name
    try:
        name = read_checkpoint(path).get("provenance", {}).get("name")
    except ScpcError:
        name = None
    return name or Path(path).stem


def load_probe_file(path: str | os.PathLike) -> dict[str, Any]:
    return load_torch(path, PROBE_FORMAT, "a SUPERB probe checkpoint (dev-best.ckpt)")
