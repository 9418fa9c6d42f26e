"""What every importer shares: reading a foreign checkpoint safely, loading weights strictly,
and writing the result with its provenance."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scpc.errors import ScpcError
from scpc.models.checkpoint import checkpoint_id, save_inference_checkpoint
from scpc.models.encoders import Encoder


@dataclass
class Options:
    """What an importer may need beside the file."""

    allow_pickle: bool = False  # unpickle arbitrary objects (runs code from the file)
    feats_args: Path | None = None  # the reference scpc's feats.args.txt
    computer_json: Path | None = None  # the reference scpc's --computer-json


@dataclass
class Converted:
    encoder: Encoder
    frontend: dict[str, Any]  # scpc front-end config, the original's feature extraction
    source: dict[str, Any]  # what the source says about the model (architecture, training)
    description: str  # one line for the system description
    source_file: Path | None = None  # the file that holds the weights, when src is a directory


def read_source(path: Path, options: Options, what: str) -> Any:
    """torch.load of a foreign checkpoint: tensors and plain types only, unless
    ``allow_pickle`` (old checkpoints pickle argparse namespaces or optimiser classes)."""
    if not path.is_file():
        raise ScpcError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=not options.allow_pickle)
    except Exception as e:
        text = str(e).strip()
        if not options.allow_pickle and "weights_only" in text:
            raise ScpcError(
                f"{path}: holds pickled Python objects beside the weights; loading it runs code "
                "from the file: pass --allow-pickle if you trust its source"
            ) from None
        first = text.splitlines()[0] if text else ""
        raise ScpcError(f"{path}: not a readable {what} ({type(e).__name__}: {first})") from None


def plain(value: Any) -> Any:
    """An OmegaConf config (pickled in Lightning checkpoints) as plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [plain(v) for v in value]
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # an Enum
        return value.value
    return value


def load_weights(encoder: Encoder, state: dict[str, torch.Tensor], path: Path) -> None:
    """All of ``state`` into ``encoder``, every parameter and buffer accounted for."""
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    want = encoder.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        problem = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise ScpcError(f"{path}: weights do not fit the architecture it declares ({problem})")
    for key, value in state.items():
        if value.shape != want[key].shape:
            raise ScpcError(
                f"{path}: {key} has shape {tuple(value.shape)}, the architecture it declares "
                f"needs {tuple(want[key].shape)}"
            )
    encoder.load_state_dict(state)


def write(converted: Converted, fmt: str, src: Path, out: Path, name: str) -> None:
    """The best.ckpt at ``out``, with provenance naming the source by name and sha256."""
    provenance = {
        "name": name,
        "system_description": converted.description,
        "train_data": converted.source.get("train_data", "as released"),
        "imported": {
            "format": fmt,
            "source": os.path.basename(src),
            "source_path": str(src.resolve()),
            "sha256": checkpoint_id(converted.source_file or src),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            # plain types only, so that torch.load(weights_only=True) reads the checkpoint
            "original": json.loads(json.dumps(converted.source, default=str)),
        },
    }
    save_inference_checkpoint(out, converted.encoder.eval(), converted.frontend, provenance)
