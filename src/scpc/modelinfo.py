"""What a best.ckpt is, from the file alone: sizes, frame rule, layers, provenance.

The frame rule is ``T' = (S + frame_offset) // downsampling_factor`` output frames for
``S >= min_samples`` audio samples, and none for shorter inputs. Strided convolutions and
framed front-ends compose to this form (a filter bank needs one whole 25 ms frame, hence
``min_samples``), but no encoder states its offset, so it is found by probing output lengths
over every ``S`` in a few periods; when no offset fits them all, the model follows no such
rule and ``None`` is reported.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from scpc.audio import SAMPLE_RATE
from scpc.models.checkpoint import InferenceModel, load_inference_checkpoint
from scpc.models.inference import layer_sizes, min_batch_samples, pad

PROBE_BATCH = 64  # lengths per probing forward pass, to bound memory on large models


def frame_counts(model: InferenceModel, lengths: list[int]) -> list[int]:
    """The number of output frames the model gives for each input length (in samples)."""
    counts = []
    for i in range(0, len(lengths), PROBE_BATCH):
        wavs = [np.zeros(n, dtype=np.float32) for n in lengths[i : i + PROBE_BATCH]]
        x, lens = pad(wavs, min_batch_samples(model))
        with torch.inference_mode():
            out = model(x, lens)
        counts.extend(int(n) for n in out.lens)
    return counts


def probe_lengths(model: InferenceModel) -> list[int]:
    d = model.downsampling_factor
    # every length over three periods (enough for the first frames of framed front-ends),
    # then a sparse check further out
    return list(range(1, 3 * d + 1)) + list(range(3 * d + 1, 16 * d, 37))


def frame_rule(model: InferenceModel) -> tuple[int | None, int]:
    """(offset, min_samples): the offset fitting every probed length from the shortest that
    gives a frame (None if none fits), and that shortest length."""
    d = model.downsampling_factor
    lengths = probe_lengths(model)
    counts = frame_counts(model, lengths)
    first = next((s for s, t in zip(lengths, counts) if t > 0), None)
    if first is None:
        return None, 0
    lo, hi = -(10**12), 10**12  # the feasible offsets, intersected over lengths
    for s, t in zip(lengths, counts):
        if s < first:
            continue
        if t > 0:  # t*d <= s + o < (t+1)*d
            lo, hi = max(lo, t * d - s), min(hi, (t + 1) * d - 1 - s)
        else:  # a frameless input past the first framed one: no rule of this form
            return None, first
    if lo > hi:
        return None, first
    # below ``first`` the rule itself may already give 0 frames; keep the smallest offset
    # consistent with every count, and report min_samples only where it adds a constraint
    return lo, first


def _encoder_name(spec: dict[str, Any]) -> str:
    if spec["name"] == "seq":
        return "+".join(_encoder_name(s) for s in spec["args"]["encoders"])
    return spec["name"]


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Ordered ``key: value`` facts about a checkpoint."""
    model = load_inference_checkpoint(path)
    checksum = model.weights_sha256
    sizes = layer_sizes(model)
    offset, min_samples = frame_rule(model)
    d = model.downsampling_factor
    info: dict[str, Any] = {
        "checkpoint": os.fspath(path),
        "feat_type": model.frontend.config.get("name", "?"),
        "feat_size": model.frontend.feat_size,
        "encoder": _encoder_name(model.encoder.to_json()),
        "output_size": model.output_size,
        "downsampling_factor": d,
        "frame_offset": "none" if offset is None else offset,
        "min_samples": min_samples,
        "frame_rate_hz": f"{SAMPLE_RATE / d:g}",
        "num_params": sum(p.numel() for p in model.parameters()),
        "layers": len(sizes),
        "layer_sizes": ",".join(map(str, sizes)),
        # load_inference_checkpoint refused the file had the weights not matched it
        "weights_sha256": (
            f"{checksum} (verified)" if checksum else "none (saved by an older scpc; not checked)"
        ),
    }
    for key, value in model.provenance.items():
        # scalars only: the frozen model.yaml is many lines and belongs in its own file
        if isinstance(value, (str, int, float, bool)) and "\n" not in str(value):
            info[key if key not in info else f"provenance_{key}"] = value
    return info


def format_info(info: dict[str, Any]) -> str:
    width = max(map(len, info))
    return "".join(f"{k:<{width}} {v}\n" for k, v in info.items())
