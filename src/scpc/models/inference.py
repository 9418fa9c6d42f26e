"""Running an inference checkpoint on audio: the one home of the helpers every consumer of a
``best.ckpt`` shares (extraction, PCA, probes, the baseline, the s3prl hub, scpc-info).

Batches are zero-padded waveforms with their lengths; padding never changes a frame (the
front-ends and encoders mask it), so each utterance keeps only its own ``lens`` frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from scpc.audio import SAMPLE_RATE
from scpc.errors import ScpcError
from scpc.models.checkpoint import InferenceModel, load_inference_checkpoint
from scpc.nn.amp import autocast

OUTPUT = -1  # --layer -1: the encoder's final output
ALL = "all"  # --layer all: every hidden state, stacked (L, T', C)
Layer = int | str

# Batches are padded up to a multiple of this many samples (0.5 s): on CPU, every new input
# shape makes oneDNN set up new convolution kernels (~70 ms each), which otherwise happens
# for nearly every utterance; with few distinct shapes extraction runs ~1.6x faster.
# Padding never changes an utterance's frames (the encoders mask it).
PAD_QUANTUM = 8000
# Default batching: on a GPU, up to this much padded audio per batch; on a CPU, one
# utterance per batch, which measured fastest there (cpc.small, 2 threads: 31x real time
# against 22x with 10 s batches and 18x with 100 s ones) and uses the least memory.
GPU_BATCH_SECONDS = 100.0
MAX_MIN_SAMPLES = 10 * SAMPLE_RATE  # a model that needs more audio than this for a frame is broken


def resolve_device(device: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a device; CUDA asked of a machine without
    one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScpcError(f"--device {device}: no CUDA device is available (use cpu or auto)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ScpcError(
            f"--device: unknown device {device!r} (cpu, cuda, cuda:N or auto)"
        ) from None


def load_model(
    checkpoint: str | os.PathLike, device: str = "auto"
) -> tuple[InferenceModel, torch.device]:
    """The checkpoint's model in eval mode on the resolved device."""
    dev = resolve_device(device)
    return load_inference_checkpoint(checkpoint).to(dev), dev


def default_batch_samples(device: str | torch.device) -> int:
    """Padded audio samples per batch: :data:`GPU_BATCH_SECONDS` on a GPU, one utterance on
    a CPU."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return int(GPU_BATCH_SECONDS * SAMPLE_RATE) if dev.type == "cuda" else 1


def min_batch_samples(model: InferenceModel) -> int:
    # Strided convolutions fail on inputs shorter than their receptive field; padding a
    # batch to a few output frames lets even 1-sample utterances through (they get 0 frames).
    return max(4 * model.downsampling_factor, 1024)


def plan_batches(lengths: Sequence[float], max_samples: float) -> list[list[int]]:
    """Indices grouped longest first so that (batch size × longest) <= max_samples (or one
    utterance alone when it is longer than that)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * max(lengths[batches[-1][0]], 1) <= max_samples:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def pad(
    wavs: Sequence[np.ndarray], min_len: int = 0, quantum: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S) zero-padded float32 audio, at least ``min_len`` and a multiple of ``quantum``
    samples wide, and the (N,) lengths."""
    lens = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    total = max(int(lens.max()), min_len)
    x = torch.zeros(len(wavs), -(-total // quantum) * quantum)
    for i, w in enumerate(wavs):
        x[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return x, lens


def pad_for(model: InferenceModel, wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pad` as every batch for ``model`` is padded: wide enough for its convolutions,
    in steps of :data:`PAD_QUANTUM`."""
    return pad(wavs, min_batch_samples(model), PAD_QUANTUM)


@torch.inference_mode()
def encode(
    model: InferenceModel,
    wavs: Sequence[np.ndarray],
    layer: Layer,
    device: torch.device | str,
    amp_dtype: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """Per-utterance CPU float32 representations: (T', C), or (L, T', C) for ``all``; the
    model runs under autocast to ``amp_dtype`` when one is given."""
    x, lens = pad_for(model, wavs)
    device = torch.device(device)
    with autocast(device, amp_dtype):
        out = model(x.to(device), lens.to(device))
    frames = out.lens.cpu().tolist()
    if layer == ALL:
        rep = torch.stack(out.hidden_states, 1)  # (N, L, T', C)
        return [rep[i, :, : frames[i]].float().cpu() for i in range(len(wavs))]
    rep = out.output if layer == OUTPUT else out.hidden_states[int(layer)]
    return [rep[i, : frames[i]].float().cpu() for i in range(len(wavs))]


def layer_sizes(model: InferenceModel, device: torch.device | str = "cpu") -> list[int]:
    """Channel count of every hidden state, from one short silent input."""
    x = np.zeros(min_batch_samples(model), dtype=np.float32)
    x, lens = pad([x])
    with torch.inference_mode():
        out = model(x.to(device), lens.to(device))
    return [h.shape[-1] for h in out.hidden_states]


def resolve_layer(layer: str | int, sizes: Sequence[int]) -> Layer:
    """--layer's value: -1 (final output), ``all``, or an index into the hidden states
    (negative ones count from the last); returns -1, ``all`` or a non-negative index."""
    if str(layer) == ALL:
        if len(set(sizes)) > 1:
            raise ScpcError(
                f"--layer all needs layers of one size, but they have {list(sizes)}; "
                "pick one with --layer N"
            )
        return ALL
    try:
        n = int(layer)
    except ValueError:
        raise ScpcError(f"--layer must be an integer or 'all', got {layer!r}") from None
    if n == OUTPUT:
        return OUTPUT
    if not -len(sizes) <= n < len(sizes):
        raise ScpcError(
            f"--layer {n}: the model has {len(sizes)} layers (0 to {len(sizes) - 1}, or -1)"
        )
    return n % len(sizes)


def _frames(model: InferenceModel, samples: int, device: torch.device):
    """The model's output for one silent input of ``samples`` samples, or None when it gives
    no frame (or cannot take an input that short)."""
    x = torch.zeros(1, max(samples, min_batch_samples(model)), device=device)
    try:
        with torch.no_grad():
            out = model(x, torch.tensor([samples], device=device))
    except RuntimeError:  # e.g. an LSTM or attention over zero filter-bank frames
        return None
    return out if int(out.lens[0]) > 0 else None


def shortest_input(model: InferenceModel, device: torch.device | str = "cpu"):
    """The fewest audio samples that give one output frame (frame counts grow with length),
    and the model's output for that input."""
    device = torch.device(device)
    out = _frames(model, 1, device)
    if out is not None:
        return 1, out
    lo, hi = 1, 2
    while (out := _frames(model, hi, device)) is None:
        if hi >= MAX_MIN_SAMPLES:
            raise ScpcError(f"the model gives no frame even for {MAX_MIN_SAMPLES} samples of audio")
        lo, hi = hi, min(2 * hi, MAX_MIN_SAMPLES)
    while hi - lo > 1:  # no frame at lo, a frame at hi
        mid = (lo + hi) // 2
        if (probe := _frames(model, mid, device)) is None:
            lo = mid
        else:
            hi, out = mid, probe
    return hi, out
