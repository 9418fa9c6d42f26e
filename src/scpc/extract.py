"""Representation extraction (``scpc-a2r``): audio to per-utterance encoder outputs on disk.

The model-facing helpers (loading, padding, running, layers, devices) are
:mod:`scpc.models.inference`; this module is the job around them. Inputs are read in windows of many batches, sorted by length inside each window and cut
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

import numpy as np
import torch

from scpc import audio
from scpc.data.datadir import DataDir, audio_entries, read_table
from scpc.errors import ScpcError
from scpc.io import atomic_path, atomic_write
from scpc.kaldi_tables import FRAME_SHIFT_FILE
from scpc.models.checkpoint import InferenceModel, checkpoint_id
from scpc.models.inference import (
    ALL,
    OUTPUT,
    Layer,
    encode,
    layer_sizes,
    load_model,
    plan_batches,
    resolve_layer,
)
from scpc.models.pca import Pca, check_compatible, load_pca
from scpc.nn import amp
from scpc.progress import progress_bar

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


# ---------------------------------------------------------------------------- running


def representations(
    model: InferenceModel,
    utts: Sequence[Utterance],
    layer: Layer,
    batch_samples: int,
    device: torch.device | str = "cpu",
    read_opts: ReadOptions = ReadOptions(),
    pca: Pca | None = None,
    amp_dtype: torch.dtype | None = None,
) -> Iterator[tuple[Utterance, torch.Tensor, int]]:
    """(utterance, representation, number of audio samples) for every utterance, in batch
    order; NaN or infinite outputs are an error naming the utterance."""

    def run(window):
        return _run_window(model, window, layer, batch_samples, device, pca, amp_dtype)

    window: list[tuple[Utterance, np.ndarray]] = []
    buffered = 0
    for utt in utts:
        wav = utt.read(read_opts)
        window.append((utt, wav))
        buffered += len(wav)
        if buffered >= WINDOW_BATCHES * batch_samples:
            yield from run(window)
            window, buffered = [], 0
    yield from run(window)


def _run_window(model, window, layer, batch_samples, device, pca, amp_dtype=None):
    for batch in plan_batches([len(w) for _, w in window], batch_samples):
        reps = encode(model, [window[i][1] for i in batch], layer, device, amp_dtype)
        for i, rep in zip(batch, reps):
            utt, wav = window[i]
            if not torch.isfinite(rep).all():
                raise ScpcError(f"{utt.entry}: the representation of {utt.uttid} has NaN/inf")
            yield utt, (pca.apply(rep) if pca is not None else rep), len(wav)


# ---------------------------------------------------------------------------- outputs

FORMATS = {"pt": ".pt", "npy": ".npy"}
# Kaldi tables: one archive per job, feats.<part>.ark with its feats.<part>.scp and
# utt2num_frames.<part>; the scp is renamed into place last, so it marks a finished part.
# merge_kaldi_parts() (or steps/make_reps.sh) joins the parts into feats.scp, utt2num_frames.
KALDI = "kaldi"
DTYPES = {"float32": torch.float32, "float64": torch.float64}  # float64: zrc's abxLS validator


def output_path(out_dir: str | os.PathLike, utt: Utterance, fmt: str) -> Path:
    return Path(out_dir) / utt.subdir / f"{utt.uttid}{FORMATS[fmt]}"


def kaldi_part_paths(out_dir: str | os.PathLike, part: str) -> tuple[Path, Path, Path]:
    """(feats.<part>.ark, feats.<part>.scp, utt2num_frames.<part>) of one job."""
    d = Path(out_dir)
    return d / f"feats.{part}.ark", d / f"feats.{part}.scp", d / f"utt2num_frames.{part}"


def merge_kaldi_parts(out_dir: str | os.PathLike) -> int:
    """feats.scp and utt2num_frames of every finished part, sorted by utterance (Kaldi's
    order); the number of utterances. A key in two parts is an error."""
    d = Path(out_dir)
    scp_lines: dict[str, str] = {}
    frames: dict[str, str] = {}
    for scp in sorted(d.glob("feats.*.scp")):
        part = scp.name[len("feats.") : -len(".scp")]
        for line in scp.read_text().splitlines():
            key = line.split(maxsplit=1)[0]
            if key in scp_lines:
                raise ScpcError(f"{scp}: {key} is also in another part of {d}")
            scp_lines[key] = line
        # a part is in its input order (a wav.scp need not be sorted); the merge sorts
        frames.update(read_table(d / f"utt2num_frames.{part}", check_sorted=False))
    with atomic_write(d / "utt2num_frames") as f:
        f.writelines(f"{k} {frames[k]}\n" for k in sorted(scp_lines))
    with atomic_write(d / "feats.scp") as f:
        f.writelines(scp_lines[k] + "\n" for k in sorted(scp_lines))
    return len(scp_lines)


def save(path: Path, rep: torch.Tensor, fmt: str, dtype: str = "float32") -> None:
    """``.pt`` or ``.npy`` of ``dtype``, written under a temporary name and renamed."""
    # .to(dtype, copy=True): a slice would save the whole batch's storage
    rep = rep.to(DTYPES[dtype], copy=True)
    with atomic_path(path) as tmp:
        if fmt == "npy":
            np.save(tmp, rep.numpy())
        else:
            torch.save(rep, tmp)


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
    amp: str = "off"  # autocast of the model (scpc.nn.amp); outputs are float32 either way
    part: str = "1"  # Kaldi tables: this job's archive, feats.<part>.ark (the job number)


@dataclass
class Summary:
    files: int = 0
    skipped: int = 0
    samples: int = 0


def prepare(job: Job) -> tuple[InferenceModel, Layer, Pca | None, torch.device]:
    """Load the model (and PCA), check that --layer and the PCA fit it."""
    if job.threads:
        torch.set_num_threads(job.threads)
    model, device = load_model(job.checkpoint, job.device)
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
    reps = representations(
        model,
        utts=utts,
        layer=layer,
        batch_samples=job.batch_samples,
        device=device,
        read_opts=job.read_opts,
        pca=pca,
        amp_dtype=amp.amp_dtype(job.amp, device),
    )
    if job.fmt == KALDI:
        if layer == ALL:
            raise ScpcError("Kaldi tables hold matrices: --format kaldi takes one layer, not all")
        write_frame_shift(job.out_dir, model.downsampling_factor)
        return _write_kaldi_part(job, reps, summary, progress)
    for utt, rep, samples in reps:
        save(output_path(job.out_dir, utt, job.fmt), rep, job.fmt, job.dtype)
        summary.files += 1
        summary.samples += samples
        if progress is not None:
            progress(1, samples)
    return summary


def write_frame_shift(out_dir: str | os.PathLike, samples_per_frame: int) -> None:
    """Kaldi's ``frame_shift`` (seconds) beside the tables, so that readers (scpc-superb, Kaldi's
    utils/data/get_frame_shift.sh) know the frame rate of the representations."""
    path = Path(out_dir) / FRAME_SHIFT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:  # parallel jobs write the same bytes
        f.write(f"{samples_per_frame / audio.SAMPLE_RATE:g}\n")


def _write_kaldi_part(job: Job, reps, summary: Summary, progress) -> Summary:
    """The job's representations into feats.<part>.ark (Kaldi's binary matrices, via kaldiio)
    with its scp (absolute archive path) and utt2num_frames; the scp is renamed in last."""
    import kaldiio

    ark, scp, num_frames = kaldi_part_paths(job.out_dir, job.part)
    ark.parent.mkdir(parents=True, exist_ok=True)
    frames = []
    with atomic_path(scp) as tmp_scp:
        with kaldiio.WriteHelper(f"ark,scp:{ark.resolve()},{tmp_scp}") as writer:
            for utt, rep, samples in reps:
                mat = rep.to(DTYPES[job.dtype]).numpy()
                writer(utt.uttid, mat)
                frames.append(f"{utt.uttid} {mat.shape[0]}\n")
                summary.files += 1
                summary.samples += samples
                if progress is not None:
                    progress(1, samples)
        with atomic_write(num_frames) as f:
            f.writelines(frames)
    return summary


# ---------------------------------------------------------------------------- driver


def pending(utts: Sequence[Utterance], out_dir: str, fmt: str, overwrite: bool) -> list[Utterance]:
    """The utterances whose output is missing: outputs are renamed into place only when
    complete, so an existing file is a finished one and a re-run resumes. Kaldi tables resume
    by whole parts (``pending_kaldi``)."""
    if overwrite:
        return list(utts)
    return [u for u in utts if not output_path(out_dir, u, fmt).exists()]


def pending_kaldi(utts: Sequence[Utterance], job: Job, overwrite: bool) -> list[Utterance]:
    """All of the job's utterances unless its part is finished (its scp exists)."""
    done = kaldi_part_paths(job.out_dir, job.part)[1].is_file()
    return [] if done and not overwrite else list(utts)


def extract_all(
    job: Job, utts: Sequence[Utterance], nj: int = 1, overwrite: bool = False
) -> Summary:
    """Extract every utterance whose output is missing, over ``nj`` processes, with a
    progress bar on stderr (silenced by SCPC_QUIET=1)."""
    prepared = prepare(job)  # checks layer/PCA/device before any work or worker starts
    if job.fmt == KALDI:
        if nj > 1:
            raise ScpcError(
                "--format kaldi writes one archive per job: split the work with --job/--num-jobs "
                "(steps/make_reps.sh --nj) rather than --nj"
            )
        todo = pending_kaldi(utts, job, overwrite)
    else:
        todo = pending(utts, job.out_dir, job.fmt, overwrite)
    if not todo:  # a finished Kaldi part must not be rewritten as an empty archive
        return Summary(skipped=len(utts))
    bar = progress_bar(total=len(todo), unit="utt", desc="extract")
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
