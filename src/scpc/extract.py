"""Representation extraction: audio to per-utterance encoder outputs, batched by length.

Inputs are read in windows of many batches, sorted by length inside each window and cut
into batches of at most ``batch_samples`` padded samples, so padding stays small without a
separate pass over the headers (wav.scp pipes have none). Padding never changes a frame:
the front-ends and encoders mask it, and each utterance keeps only its own ``lens`` frames.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from scpc import audio
from scpc.data.datadir import DataDir, audio_entries, read_table
from scpc.errors import ScpcError
from scpc.io import atomic_path

if TYPE_CHECKING:
    from scpc.models.checkpoint import InferenceModel
    from scpc.pca import Pca

OUTPUT = -1  # --layer -1: the encoder's final output
ALL = "all"  # --layer all: every hidden state, stacked (L, T', C)
Layer = int | str
WINDOW_BATCHES = 16  # batches of audio read ahead and sorted together


@dataclass(frozen=True)
class ReadOptions:
    resample: bool = False  # resample other rates to 16 kHz instead of refusing them
    channel: int | None = None  # multi-channel audio needs an explicit choice


@dataclass(frozen=True)
class Utterance:
    uttid: str
    entry: str  # a path or a Kaldi pipe command ("... |")
    subdir: str = ""  # output subdirectory (mirrors --in-dir's layout)
    start: float = 0.0  # a Kaldi segment inside the recording, in seconds
    end: float | None = None

    def read(self, opts: ReadOptions) -> np.ndarray:
        return audio.read_audio(
            self.entry,
            resample=opts.resample,
            channel=opts.channel,
            start=self.start,
            end=self.end,
        )


# ---------------------------------------------------------------------------- inputs


def scan_dir(root: str | os.PathLike, suffix: str = ".wav") -> list[Utterance]:
    """Files under ``root`` (recursively) ending in ``suffix``; id = basename minus suffix."""
    root = Path(root)
    if not root.is_dir():
        raise ScpcError(f"{root}: no such directory")
    utts = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if name.endswith(suffix) and len(name) > len(suffix) and not name.startswith("."):
                utts.append(
                    Utterance(
                        name[: -len(suffix)], os.path.join(dirpath, name), "" if rel == "." else rel
                    )
                )
    if not utts:
        raise ScpcError(f"{root}: no files ending in {suffix!r} (see --audio-suffix)")
    return utts


def read_map(path: str | os.PathLike) -> list[Utterance]:
    """``<uttid> <path-or-pipe>`` lines, e.g. a Kaldi wav.scp; any order."""
    table = read_table(path, check_sorted=False)
    for utt, entry in table.items():
        if not entry:
            raise ScpcError(f"{path}: utterance {utt!r} has no audio path")
    if not table:
        raise ScpcError(f"{path}: no utterances")
    return [Utterance(u, e) for u, e in table.items()]


def read_data_dir(path: str | os.PathLike) -> list[Utterance]:
    """A Kaldi data dir's utterances: wav.scp, cut by segments when present."""
    d = DataDir(path)
    if not d.has("wav.scp"):
        raise ScpcError(f"{path}: no wav.scp (expected a Kaldi data dir)")
    if not d.has("segments"):
        return read_map(d.file("wav.scp"))
    return [Utterance(utt, entry, "", start, end) for utt, entry, start, end in audio_entries(d)]


# ---------------------------------------------------------------------------- batching


def plan_batches(lengths: Sequence[int], max_samples: int) -> list[list[int]]:
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


def min_batch_samples(model: InferenceModel) -> int:
    # Strided convolutions fail on inputs shorter than their receptive field; padding a
    # batch to a few output frames lets even 1-sample utterances through (they get 0 frames).
    return max(4 * model.downsampling_factor, 1024)


# Batches are padded up to a multiple of this many samples (0.5 s): on CPU, every new input
# shape makes oneDNN set up new convolution kernels (~70 ms each), which otherwise happens
# for nearly every utterance; with few distinct shapes extraction runs ~1.6x faster.
# Padding never changes an utterance's frames (the encoders mask it).
PAD_QUANTUM = 8000
# Default batching: on a GPU, up to this much padded audio per batch; on a CPU, one
# utterance per batch, which measured fastest there (cpc.small, 2 threads: 31x real time
# against 22x with 10 s batches and 18x with 100 s ones) and uses the least memory.
GPU_BATCH_SECONDS = 100.0


def default_batch_samples(device: str) -> int:
    from scpc.audio import SAMPLE_RATE

    return int(GPU_BATCH_SECONDS * SAMPLE_RATE) if resolve_device(device).type == "cuda" else 1


def pad(
    wavs: Sequence[np.ndarray], min_len: int = 0, quantum: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    total = max(int(lens.max()), min_len)
    x = torch.zeros(len(wavs), -(-total // quantum) * quantum)
    for i, w in enumerate(wavs):
        x[i, : len(w)] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return x, lens


@torch.inference_mode()
def encode(
    model: InferenceModel, wavs: Sequence[np.ndarray], layer: Layer, device: torch.device | str
) -> list[torch.Tensor]:
    """Per-utterance CPU float32 representations: (T', C), or (L, T', C) for ``all``."""
    x, lens = pad(wavs, min_batch_samples(model), PAD_QUANTUM)
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


def representations(
    model: InferenceModel,
    utts: Sequence[Utterance],
    layer: Layer,
    batch_samples: int,
    device: torch.device | str = "cpu",
    read_opts: ReadOptions = ReadOptions(),
    pca: Pca | None = None,
) -> Iterator[tuple[Utterance, torch.Tensor, int]]:
    """(utterance, representation, number of audio samples) for every utterance, in batch
    order; NaN or infinite outputs are an error naming the utterance."""
    window: list[tuple[Utterance, np.ndarray]] = []
    buffered = 0
    for utt in utts:
        wav = utt.read(read_opts)
        window.append((utt, wav))
        buffered += len(wav)
        if buffered >= WINDOW_BATCHES * batch_samples:
            yield from _run_window(model, window, layer, batch_samples, device, pca)
            window, buffered = [], 0
    yield from _run_window(model, window, layer, batch_samples, device, pca)


def _run_window(model, window, layer, batch_samples, device, pca):
    for batch in plan_batches([len(w) for _, w in window], batch_samples):
        reps = encode(model, [window[i][1] for i in batch], layer, device)
        for i, rep in zip(batch, reps):
            utt, wav = window[i]
            if not torch.isfinite(rep).all():
                raise ScpcError(f"{utt.entry}: the representation of {utt.uttid} has NaN/inf")
            yield utt, (pca.apply(rep) if pca is not None else rep), len(wav)


# ---------------------------------------------------------------------------- outputs

FORMATS = {"pt": ".pt", "npy": ".npy"}
DTYPES = {"float32": torch.float32, "float64": torch.float64}  # float64: zrc's abxLS validator


def output_path(out_dir: str | os.PathLike, utt: Utterance, fmt: str) -> Path:
    return Path(out_dir) / utt.subdir / f"{utt.uttid}{FORMATS[fmt]}"


def save(path: Path, rep: torch.Tensor, fmt: str, dtype: str = "float32") -> None:
    """``.pt`` or ``.npy`` of ``dtype``, written under a temporary name and renamed."""
    # .to(dtype, copy=True): a slice would save the whole batch's storage
    rep = rep.to(DTYPES[dtype], copy=True)
    with atomic_path(path) as tmp:
        if fmt == "npy":
            np.save(tmp, rep.numpy())
        else:
            torch.save(rep, tmp)


def resolve_device(device: str) -> torch.device:
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


@dataclass(frozen=True)
class Job:
    """What a worker process needs to extract its share (picklable)."""

    checkpoint: str
    out_dir: str
    layer: str
    fmt: str = "pt"
    device: str = "auto"
    batch_samples: int = 100 * audio.SAMPLE_RATE
    read_opts: ReadOptions = ReadOptions()
    pca_file: str | None = None
    threads: int | None = None
    dtype: str = "float32"


@dataclass
class Summary:
    files: int = 0
    skipped: int = 0
    samples: int = 0


def prepare(job: Job) -> tuple[InferenceModel, Layer, Pca | None, torch.device]:
    """Load the model (and PCA), check that --layer and the PCA fit it."""
    from scpc.models.checkpoint import load_inference_checkpoint
    from scpc.pca import check_compatible, checkpoint_id, load_pca

    if job.threads:
        torch.set_num_threads(job.threads)
    device = resolve_device(job.device)
    model = load_inference_checkpoint(job.checkpoint).to(device)
    sizes = layer_sizes(model, device)
    layer = resolve_layer(job.layer, sizes)
    pca = None
    if job.pca_file is not None:
        if layer == ALL:
            raise ScpcError("--pca-file applies to one layer; it cannot be used with --layer all")
        pca = load_pca(job.pca_file)
        size = model.output_size if layer == OUTPUT else sizes[int(layer)]
        check_compatible(pca, int(layer), size, checkpoint_id(job.checkpoint), job.pca_file)
    return model, layer, pca, device


def run_job(
    job: Job,
    utts: Sequence[Utterance],
    prepared: tuple | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Extract ``utts`` (all missing outputs) in this process; ``progress(files, samples)``."""
    model, layer, pca, device = prepared or prepare(job)
    summary = Summary()
    for utt, rep, samples in representations(
        model, utts, layer, job.batch_samples, device, job.read_opts, pca
    ):
        save(output_path(job.out_dir, utt, job.fmt), rep, job.fmt, job.dtype)
        summary.files += 1
        summary.samples += samples
        if progress is not None:
            progress(1, samples)
    return summary


# ---------------------------------------------------------------------------- driver


def pending(utts: Sequence[Utterance], out_dir: str, fmt: str, overwrite: bool) -> list[Utterance]:
    """The utterances whose output is missing: outputs are renamed into place only when
    complete, so an existing file is a finished one and a re-run resumes."""
    if overwrite:
        return list(utts)
    return [u for u in utts if not output_path(out_dir, u, fmt).exists()]


def extract_all(
    job: Job, utts: Sequence[Utterance], nj: int = 1, overwrite: bool = False
) -> Summary:
    """Extract every utterance whose output is missing, over ``nj`` processes, with a
    progress bar on stderr (silenced by SCPC_QUIET=1)."""
    from tqdm import tqdm

    prepared = prepare(job)  # checks layer/PCA/device before any work or worker starts
    todo = pending(utts, job.out_dir, job.fmt, overwrite)
    bar = tqdm(
        total=len(todo),
        unit="utt",
        desc="extract",
        file=sys.stderr,
        mininterval=0.5 if sys.stderr.isatty() else 30,
        disable=os.environ.get("SCPC_QUIET") == "1",
    )
    with bar:
        if nj <= 1 or len(todo) <= 1:
            summary = run_job(job, todo, prepared, lambda files, _: bar.update(files))
        else:
            del prepared  # each worker loads its own copy
            summary = _run_parallel(job, todo, min(nj, len(todo)), bar)
    summary.skipped = len(utts) - len(todo)
    return summary


def _worker(job: Job, utts: list[Utterance], queue) -> None:
    # SIGTERM (sent when another worker fails) unwinds normally, so atomic writes in
    # progress remove their temporary files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        s = run_job(job, utts, progress=lambda f, n: queue.put(("progress", f, n)))
        queue.put(("done", s.files, s.samples))
    except ScpcError as e:
        queue.put(("error", str(e), 0))
    except BaseException as e:  # anything else: report it rather than die silently
        queue.put(("error", f"worker failed: {type(e).__name__}: {e}", 0))


def _run_parallel(job: Job, todo: list[Utterance], nj: int, bar) -> Summary:
    threads = max(1, torch.get_num_threads() // nj)
    job = dataclasses.replace(job, threads=threads)
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(job, todo[i::nj], queue)) for i in range(nj)]
    for p in procs:
        p.start()
    summary, done = Summary(), 0
    try:
        while done < nj:
            try:
                kind, a, b = queue.get(timeout=1.0)
            except queue_module.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise ScpcError(f"a worker died (exit code {dead[0].exitcode})") from None
                continue
            if kind == "progress":
                bar.update(a)
            elif kind == "done":
                summary.files += a
                summary.samples += b
                done += 1
            else:
                raise ScpcError(a)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
    return summary
