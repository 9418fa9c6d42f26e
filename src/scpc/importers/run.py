"""The import job: convert, then write best.ckpt (and model.yaml in an experiment dir)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from scpc.importers import format_module
from scpc.importers.common import Options, write
from scpc.io import atomic_path


def import_checkpoint(
    fmt: str,
    src: Path,
    out: Path,
    version: int = 0,
    name: str | None = None,
    allow_pickle: bool = False,
    feats_args: Path | None = None,
    computer_json: Path | None = None,
) -> Path:
    """Convert ``src``; write ``out`` (a .ckpt) or ``out/version_N/best.ckpt`` with model.yaml
    (the import's record) and frontend.json (its front-end). Returns the checkpoint's path.
    Nothing is written if the conversion fails."""
    options = Options(allow_pickle=allow_pickle, feats_args=feats_args, computer_json=computer_json)
    converted = format_module(fmt).convert(src, options)
    if out.suffix == ".ckpt":
        ckpt, name = out, name or out.stem
    else:
        ckpt, name = out / f"version_{version}" / "best.ckpt", name or out.name
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    write(converted, fmt, src, ckpt, name)
    if out.suffix != ".ckpt":
        record = {
            "name": name,
            "system_description": converted.description,
            "imported": {"format": fmt, "source": str(src.resolve()), "checkpoint": "best.ckpt"},
        }
        with atomic_path(ckpt.parent / "model.yaml") as tmp:
            header = "# written by scpc-import: an imported model, not a training config\n"
            Path(tmp).write_text(header + yaml.safe_dump(record, sort_keys=False))
        # its front-end as a conf/feats/<name>.json, for continuing it (training.init_checkpoint)
        with atomic_path(ckpt.parent / "frontend.json") as tmp:
            Path(tmp).write_text(json.dumps(converted.frontend, indent=2) + "\n")
    return ckpt
