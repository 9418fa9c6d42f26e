"""Feature dirs: a Kaldi data dir's audio through a front-end, as pydrobert's SpectDataSet reads.

Layout of ``FEAT_DIR``::

    feat/<utt>.pt     float32 (T, F) features ((S, 1) samples for the raw front-end)
    ali/<utt>.pt      long (T,) frame labels, for the utterances in the data dir's ali.txt
    ext/utt2spk       copied from the data dir
    frontend.json     the front-end config (canonical JSON); a dir holds one front-end only
                      (``{"name": "kaldi", ...}`` for features imported from a Kaldi table)
    .complete         written once every utterance's files exist

Parallel jobs each take a contiguous share of the utterances and skip those already done,
so a killed run resumes where it stopped; every file is written under a temporary name and
renamed, so a file that exists is whole. torch is imported only once there is something to
compute, so checks and finished dirs answer at once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scpc import audio
from scpc.data.alignment import FRAME_SHIFT, read_alignments
from scpc.data.datadir import DataDir, audio_entries, read_table, validate
from scpc.errors import ScpcError
from scpc.frontend import check_config, frontend_from_config
from scpc.io import atomic_path, atomic_write, remove_temps
from scpc.kaldi_tables import frame_shift, read_scp
from scpc.progress import progress_bar

if TYPE_CHECKING:
    import torch

FRONTEND_JSON = "frontend.json"
COMPLETE = ".complete"


def canonical_json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, indent=2) + "\n"


def read_feat_dir_frontend(feat_dir: str | os.PathLike) -> dict[str, Any]:
    """The front-end config a feature dir was computed with."""
    path = Path(feat_dir) / FRONTEND_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file; is {feat_dir} a feature dir?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScpcError(f"{path}: not valid JSON ({e})") from None


def check(data_dir: str | os.PathLike, feat_dir: str | os.PathLike, config: dict[str, Any]) -> None:
    """What a run would refuse, found before any job starts."""
    d = DataDir(data_dir)
    if not d.has("wav.scp"):
        raise ScpcError(f"{d.file('wav.scp')}: no such file")
    # what utils/validate_data_dir.sh rejects is rejected here too (audio is read later)
    validate(d.path, text=False, check_audio=False)
    check_config(config)
    if (Path(feat_dir) / FRONTEND_JSON).exists():
        check_frontend(Path(feat_dir), config)


def is_complete(feat_dir: str | os.PathLike, config: dict[str, Any]) -> bool:
    """Whether the dir is finished and was made with ``config`` (refused if made with another)."""
    feat_dir = Path(feat_dir)
    if (feat_dir / FRONTEND_JSON).exists():
        check_frontend(feat_dir, config)
    return (feat_dir / COMPLETE).exists()


def check_frontend(feat_dir: Path, config: dict[str, Any]) -> None:
    existing = read_feat_dir_frontend(feat_dir)
    if existing != config:
        keys = sorted(k for k in {*existing, *config} if existing.get(k) != config.get(k))
        raise ScpcError(
            f"{feat_dir / FRONTEND_JSON}: the dir holds features of another front-end "
            f"(differing in {', '.join(map(repr, keys))}); remove {feat_dir} or choose another dir"
        )


def _claim(feat_dir: Path, config: dict[str, Any]) -> None:
    """Record the front-end, or refuse a dir made with a different one."""
    if (feat_dir / FRONTEND_JSON).exists():
        check_frontend(feat_dir, config)
    else:
        # parallel jobs may all get here; each writes the same bytes atomically
        with atomic_write(feat_dir / FRONTEND_JSON) as f:
            f.write(canonical_json(config))


def job_share(utts: Sequence[str], job: int, num_jobs: int) -> list[str]:
    """Job ``job`` (1-based, as Kaldi's JOB) of ``num_jobs``: a contiguous, balanced share."""
    if not 1 <= job <= num_jobs:
        raise ScpcError(f"--job {job} must lie in 1..{num_jobs}")
    n = len(utts)
    return list(utts[(job - 1) * n // num_jobs : job * n // num_jobs])


def frame_labels(labels: Sequence[int], num_frames: int, frame_shift: int) -> torch.Tensor:
    """10 ms labels to one per output frame: repeated for shorter frames, then cropped or
    padded with the last label to exactly ``num_frames``."""
    import torch

    if FRAME_SHIFT % frame_shift:
        raise ScpcError(
            f"cannot map 10 ms alignments to a front-end shift of {frame_shift} samples"
        )
    ali = torch.tensor(list(labels), dtype=torch.long).repeat_interleave(FRAME_SHIFT // frame_shift)
    if len(ali) >= num_frames:
        return ali[:num_frames].clone()
    if len(ali) == 0:
        raise ScpcError("empty alignment")
    return torch.cat([ali, ali[-1:].expand(num_frames - len(ali))])


def _save(tensor: torch.Tensor, path: Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        # clone: a view would drag its whole batch storage into the file
        torch.save(tensor.contiguous().clone(), tmp)


def _progress(total: int, desc: str):
    # parallel feature jobs write logs: a bar only on a terminal
    return progress_bar(total=total, desc=desc, unit="utt", disable=not sys.stderr.isatty())


def compute_feat_dir(
    data_dir: str | os.PathLike,
    feat_dir: str | os.PathLike,
    config: dict[str, Any],
    job: int | None = None,
    num_jobs: int | None = None,
) -> tuple[int, int]:
    """Compute the features (and alignments) of a data dir; returns (written, skipped).

    Without ``job``, processes every utterance and then marks the dir complete; with it,
    only the job's share, leaving completion to a final call without ``job``.
    """
    check(data_dir, feat_dir, config)
    d, feat_dir = DataDir(data_dir), Path(feat_dir)
    _claim(feat_dir, config)
    alis = dict(read_alignments(d.file("ali.txt"))) if d.has("ali.txt") else {}
    entries = list(audio_entries(d))
    utts = [e[0] for e in entries]
    if job is not None:
        wanted = set(job_share(utts, job, num_jobs or 1))
        entries = [e for e in entries if e[0] in wanted]
    todo = [e for e in entries if not _done(feat_dir, e[0], alis)]
    if job is None and (removed := remove_temps(feat_dir)):  # after the jobs: files of killed ones
        print(f"{feat_dir}: removed {removed} temporary files of interrupted jobs", file=sys.stderr)
    if todo:
        desc = feat_dir.name + (f" job {job}/{num_jobs}" if job is not None else "")
        _compute(d, feat_dir=feat_dir, config=config, entries=todo, alis=alis, desc=desc)
    if job is None:
        finalize(d, feat_dir, utts, set(alis))
    return len(todo), len(entries) - len(todo)


def _compute(
    d: DataDir,
    feat_dir: Path,
    config: dict[str, Any],
    entries: list[tuple[str, str, float, float | None]],
    alis: dict[str, list[int]],
    desc: str,
) -> None:
    import torch

    frontend = frontend_from_config(config)
    failed: list[str] = []
    with torch.inference_mode(), _progress(len(entries), desc) as bar:
        for utt, entry, start, end in entries:
            try:
                _compute_one(d, feat_dir, frontend, utt, entry, start, end, alis)
            except ScpcError as e:  # one line per bad utterance; the others go on
                print(f"{d.path}: {utt}: {e}", file=sys.stderr)
                failed.append(utt)
            bar.update()
    if failed:
        raise ScpcError(
            f"{d.path}: {len(failed)} of {len(entries)} utterances could not be computed "
            f"(first: {failed[0]}; each named above); the others are in {feat_dir}"
        )


def _compute_one(d, feat_dir, frontend, utt, entry, start, end, alis) -> None:
    import torch

    wav = torch.from_numpy(audio.read_audio(entry, start=start, end=end))
    feats, lens = frontend(wav[None], torch.tensor([len(wav)]))
    num = int(lens[0])
    if num == 0:
        raise ScpcError(f"{len(wav)} samples are too short for the front-end")
    try:
        _save_utterance(d, feat_dir, utt, feats[0, :num].float(), alis, frontend.frame_shift)
    except ScpcError as e:
        raise ScpcError(f"{entry}: {e}") from None


def _done(feat_dir: Path, utt: str, alis: dict[str, list[int]]) -> bool:
    """Whether an utterance's files exist (the feature file is written last)."""
    ali_done = utt not in alis or (feat_dir / "ali" / f"{utt}.pt").exists()
    return ali_done and (feat_dir / "feat" / f"{utt}.pt").exists()


def _save_utterance(
    d: DataDir, feat_dir: Path, utt: str, feats, alis: dict[str, list[int]], shift: int
) -> None:
    """An utterance's (T, F) features, checked finite, and its alignment at their frame shift
    (``shift`` samples); the feature file last, as it marks the utterance done."""
    import torch

    if not torch.isfinite(feats).all():
        raise ScpcError("NaN or infinite features")
    if utt in alis:
        try:
            labels = frame_labels(alis[utt], len(feats), shift)
        except ScpcError as e:
            raise ScpcError(f"{d.file('ali.txt')}: {e}") from None
        _save(labels, feat_dir / "ali" / f"{utt}.pt")
    _save(feats, feat_dir / "feat" / f"{utt}.pt")


def kaldi_frontend(scp: str | os.PathLike, num_features: int) -> dict[str, Any]:
    """The ``kaldi`` front-end config of the features in ``scp``."""
    return {
        "name": "kaldi",
        "num_features": num_features,
        "frame_shift_ms": round(frame_shift(scp) * 1000, 6),
    }


def import_scp(
    scp: str | os.PathLike, data_dir: str | os.PathLike, feat_dir: str | os.PathLike
) -> tuple[int, int]:
    """The features of a data dir's utterances from a Kaldi feats.scp (fMLLR, MFCCs, ...) into a
    feature dir recorded with a ``kaldi`` front-end (``steps/make_feats.sh --import-scp``);
    the data dir's ali.txt becomes ali/ at the features' frame rate. Returns (written,
    skipped); a re-run skips what is there, and a dir of another front-end is refused."""
    d, feat_dir = DataDir(data_dir), Path(feat_dir)
    table = read_scp(scp)
    if d.has("wav.scp"):
        utts = [e[0] for e in audio_entries(d)]
    elif d.has("utt2spk"):
        utts = list(read_table(d.file("utt2spk")))
    else:
        raise ScpcError(f"{d.path}: neither wav.scp nor utt2spk lists the utterances")
    missing = [u for u in utts if u not in table]
    if missing:
        raise ScpcError(
            f"{scp}: no features of {len(missing)} of the {len(utts)} utterances of {d.path} "
            f"(first: {missing[0]})"
        )
    first = table[utts[0]].read()
    if first.ndim != 2:
        raise ScpcError(f"{table[utts[0]]}: expected a (frames, features) matrix")
    config = kaldi_frontend(scp, int(first.shape[1]))
    if is_complete(feat_dir, config):
        return 0, len(utts)
    _claim(feat_dir, config)
    alis = dict(read_alignments(d.file("ali.txt"))) if d.has("ali.txt") else {}
    shift = round(config["frame_shift_ms"] * audio.SAMPLE_RATE / 1000)
    todo = [u for u in utts if not _done(feat_dir, u, alis)]
    import torch

    for utt in progress_bar(todo, desc=f"import {feat_dir.name}", unit="utt"):
        x = torch.from_numpy(table[utt].read()).float()
        if x.dim() != 2 or x.shape[1] != config["num_features"] or x.shape[0] == 0:
            raise ScpcError(
                f"{table[utt]}: shape {tuple(x.shape)}, expected (frames, {config['num_features']})"
            )
        try:
            _save_utterance(d, feat_dir, utt, x, alis, shift)
        except ScpcError as e:
            raise ScpcError(f"{table[utt]}: {e}") from None
    finalize(d, feat_dir, utts, set(alis))
    return len(todo), len(utts) - len(todo)


def finalize(d: DataDir, feat_dir: Path, utts: Sequence[str], ali_utts: set[str]) -> None:
    """Copy the speaker table and write the completion marker, once every file exists."""
    for utt in utts:
        if not (feat_dir / "feat" / f"{utt}.pt").exists():
            raise ScpcError(f"{feat_dir / 'feat' / utt}.pt: missing; rerun to compute it")
        if utt in ali_utts and not (feat_dir / "ali" / f"{utt}.pt").exists():
            raise ScpcError(f"{feat_dir / 'ali' / utt}.pt: missing; rerun to compute it")
    if d.has("utt2spk"):
        with atomic_path(feat_dir / "ext" / "utt2spk") as tmp:
            shutil.copyfile(d.file("utt2spk"), tmp)
    with atomic_write(feat_dir / COMPLETE) as f:
        f.write(f"{len(utts)} utterances\n")
