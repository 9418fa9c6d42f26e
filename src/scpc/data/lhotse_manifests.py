"""Kaldi data dirs to and from lhotse manifests (``scpc-prep to-lhotse / from-lhotse``), for
icefall and k2 users who keep corpora as lhotse manifests.

A data dir maps to lhotse as follows (and back):

- ``wav.scp``: one :class:`~lhotse.Recording` per entry, a ``file`` source for a path and a
  ``command`` source for a pipe (``cmd |``); its sample count is read from the audio.
- each utterance: one :class:`~lhotse.SupervisionSegment` (``id`` the utterance, ``start`` and
  ``duration`` from ``segments``, else the whole recording) with ``text``, ``speaker``,
  ``gender`` (``spk2gender``), the frame alignment (``ali.txt`` with ``phones.txt``) as lhotse's
  ``alignment["phone"]`` items (runs of 10 ms frames, times in the recording), and the
  utterance's ZeroSpeech ABX items (``abx.item``) in ``custom["abx_items"]``;
- ``cuts.jsonl.gz``: one cut per utterance (the cut's id is the utterance's), with its
  features when the data dir has a ``feats.scp`` or a feature dir is given (copied as lhotse
  ``numpy_files`` under ``OUT/features/``).

Back from lhotse, a recording's sole supervision that covers it and shares its id is an
utterance without ``segments``; any other layout writes ``segments``. Cuts with features give
the data dir a Kaldi ``feats.scp`` (one archive, with ``utt2num_frames`` and ``frame_shift``).
lhotse's own Kaldi export is not used: it writes ffmpeg pipes for compressed audio and a
``segments`` file for every recording.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scpc import audio
from scpc.data.alignment import (
    FRAME_SHIFT,
    PHONES,
    Item,
    read_alignments,
    read_items,
    read_phone_table,
    write_alignments,
    write_items,
    write_phone_table,
)
from scpc.data.datadir import DataDir, utt2spk_to_spk2utt, validate, write_table
from scpc.errors import ScpcError
from scpc.io import atomic_path
from scpc.kaldi_tables import FRAME_SHIFT_FILE, frame_shift, is_scp, read_scp

ALI_SECONDS = FRAME_SHIFT / audio.SAMPLE_RATE  # one ali.txt frame
MANIFESTS = ("recordings.jsonl.gz", "supervisions.jsonl.gz", "cuts.jsonl.gz")


def _lhotse():
    try:
        import lhotse
    except ImportError:
        raise ScpcError(
            "lhotse is not installed: pip install 'lhotse==1.33.0' (or scpc[lhotse])"
        ) from None
    return lhotse


# ---------------------------------------------------------------------------- to lhotse


def _recording(reco: str, entry: str):
    lhotse = _lhotse()
    if entry.rstrip().endswith("|"):
        samples = audio.read_audio(entry)  # a pipe: its length is known only by running it
        return lhotse.Recording(
            id=reco,
            sources=[
                lhotse.AudioSource(type="command", channels=[0], source=entry.rstrip()[:-1].strip())
            ],
            sampling_rate=audio.SAMPLE_RATE,
            num_samples=len(samples),
            duration=len(samples) / audio.SAMPLE_RATE,
        )
    # the header through soundfile (as scpc reads audio), not lhotse's backend probing
    import soundfile as sf

    try:
        info = sf.info(entry)
    except Exception as e:  # noqa: BLE001 - soundfile's errors are one line here
        raise ScpcError(f"{entry}: cannot read the audio of recording {reco} ({e})") from None
    return lhotse.Recording(
        id=reco,
        sources=[
            lhotse.AudioSource(type="file", channels=list(range(info.channels)), source=entry)
        ],
        sampling_rate=info.samplerate,
        num_samples=info.frames,
        duration=info.frames / info.samplerate,
    )


def _phone_runs(labels: Sequence[int], names: dict[int, str], offset: float):
    """10 ms frame labels to lhotse AlignmentItems (one per run), times from ``offset``."""
    lhotse = _lhotse()
    items, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            items.append(
                lhotse.supervision.AlignmentItem(
                    symbol=names[labels[start]],
                    start=round(offset + start * ALI_SECONDS, 4),
                    duration=round((i - start) * ALI_SECONDS, 4),
                )
            )
            start = i
    return items


def _feature_source(data_dir: Path, feats: str | os.PathLike | None):
    """(utt -> (T, F) array reader, frame shift in seconds, feature type) or None."""
    if feats is None:
        if not (data_dir / "feats.scp").is_file():
            return None
        feats = data_dir / "feats.scp"
    feats = Path(feats)
    if is_scp(feats):
        table = read_scp(feats)
        return (lambda u: table[u].read() if u in table else None), frame_shift(feats), "kaldi"
    from scpc.data.featdir import read_feat_dir_frontend
    from scpc.frontend import frontend_from_config

    fe = frontend_from_config(read_feat_dir_frontend(feats))

    def read(utt: str) -> np.ndarray | None:
        import torch

        path = feats / "feat" / f"{utt}.pt"
        return torch.load(path, weights_only=True).numpy() if path.is_file() else None

    return read, fe.frame_shift / audio.SAMPLE_RATE, fe.config["name"]


def to_lhotse(
    data_dir: str | os.PathLike, out: str | os.PathLike, feats: str | os.PathLike | None = None
) -> dict[str, int]:
    """Write ``OUT/{recordings,supervisions,cuts}.jsonl.gz`` of a data dir; the counts."""
    lhotse = _lhotse()
    d, out = DataDir(data_dir), Path(out)
    validate(d.path)
    utt2spk = d.table("utt2spk")
    text = d.table("text") if d.has("text") else {}
    genders = d.table("spk2gender") if d.has("spk2gender") else {}
    alis = dict(read_alignments(d.file("ali.txt"))) if d.has("ali.txt") else {}
    names = {i: p for p, i in read_phone_table(d.file("phones.txt")).items()} if alis else {}
    items: dict[str, list[Item]] = {}
    if d.has("abx.item"):
        for it in read_items(d.file("abx.item")):
            items.setdefault(it.file, []).append(it)
    recordings = {reco: _recording(reco, entry) for reco, entry in d.table("wav.scp").items()}
    if d.has("segments"):
        spans = {}
        for utt, value in d.table("segments").items():
            reco, start, end = value.split()
            rec = recordings[reco]
            stop = rec.duration if float(end) < 0 else float(end)
            spans[utt] = (reco, float(start), round(stop - float(start), 6))
    else:
        spans = {u: (u, 0.0, recordings[u].duration) for u in utt2spk}
    sups = []
    for utt, (reco, start, duration) in spans.items():
        custom: dict[str, Any] = {}
        if utt in items:
            custom["abx_items"] = [
                [it.onset, it.offset, it.phone, it.prev, it.next, it.speaker] for it in items[utt]
            ]
        if utt in alis and not alis[utt]:
            raise ScpcError(f"{d.file('ali.txt')}: {utt}: an empty alignment")
        sups.append(
            lhotse.SupervisionSegment(
                id=utt,
                recording_id=reco,
                start=start,
                duration=duration,
                channel=0,
                text=text.get(utt),
                speaker=utt2spk[utt],
                gender=genders.get(utt2spk[utt]),
                alignment={"phone": _phone_runs(alis[utt], names, start)} if utt in alis else None,
                custom=custom or None,
            )
        )
    recording_set = lhotse.RecordingSet.from_recordings(recordings.values())
    supervision_set = lhotse.SupervisionSet.from_segments(sups)
    cuts = _cuts(lhotse, recordings, sups, _feature_source(d.path, feats), out)
    out.mkdir(parents=True, exist_ok=True)
    for name, manifest in zip(MANIFESTS, (recording_set, supervision_set, cuts)):
        with atomic_path(out / name) as tmp:
            manifest.to_file(str(tmp) + ".jsonl.gz")
            os.replace(str(tmp) + ".jsonl.gz", tmp)
    with_feats = sum(c.has_features for c in cuts)
    return {"recordings": len(recordings), "supervisions": len(sups), "features": with_feats}


def _cuts(lhotse, recordings, sups, source, out: Path):
    from lhotse.features.io import NumpyFilesWriter

    writer = None
    if source is not None:
        writer = NumpyFilesWriter(str(out / "features"))
        read, shift, kind = source
    cuts = []
    for sup in sups:
        features = None
        if writer is not None:
            mat = read(sup.id)
            if mat is None:
                raise ScpcError(f"no features of utterance {sup.id} (every cut needs some)")
            mat = np.ascontiguousarray(mat, dtype=np.float32)
            features = lhotse.Features(
                type=kind,
                num_frames=mat.shape[0],
                num_features=mat.shape[1],
                frame_shift=shift,
                sampling_rate=audio.SAMPLE_RATE,
                start=sup.start,
                duration=round(mat.shape[0] * shift, 6),
                storage_type=writer.name,
                storage_path=str(writer.storage_path),
                storage_key=writer.write(sup.id, mat),
                recording_id=sup.recording_id,
                channels=0,
            )
        cuts.append(
            lhotse.MonoCut(
                id=sup.id,
                start=sup.start,
                duration=sup.duration,
                channel=0,
                supervisions=[sup],
                recording=recordings[sup.recording_id],
                features=features,
            )
        )
    return lhotse.CutSet.from_cuts(cuts)


# ---------------------------------------------------------------------------- from lhotse


def _wav_entry(rec) -> str:
    if len(rec.sources) != 1:
        raise ScpcError(f"recording {rec.id}: {len(rec.sources)} audio sources; Kaldi takes one")
    src = rec.sources[0]
    if rec.num_channels != 1:
        raise ScpcError(
            f"recording {rec.id}: {rec.num_channels} channels; pick one first (scpc reads mono)"
        )
    if src.type == "file":
        return str(src.source)
    if src.type == "command":
        return f"{src.source} |"
    raise ScpcError(f"recording {rec.id}: a {src.type!r} audio source cannot go into wav.scp")


def _frames(items, start: float) -> list[tuple[str, int]]:
    """lhotse alignment items to (symbol, 10 ms frames) runs, gaps failing."""
    runs, t = [], start
    for it in sorted(items, key=lambda x: x.start):
        if abs(it.start - t) > ALI_SECONDS / 2:
            raise ScpcError(f"phone alignment: a gap or overlap at {it.start:.4f} s")
        runs.append((it.symbol, round(it.duration / ALI_SECONDS)))
        t = it.start + it.duration
    return runs


def from_lhotse(
    recordings: str | os.PathLike,
    supervisions: str | os.PathLike,
    out_dir: str | os.PathLike,
    cuts: str | os.PathLike | None = None,
    phones: str | os.PathLike | None = None,
) -> int:
    """Write a Kaldi data dir of lhotse manifests; the number of utterances. ``phones``: the
    phone table of alignments (default: scpc's, else the sorted symbols)."""
    lhotse = _lhotse()
    recs = {r.id: r for r in _load(lhotse.RecordingSet, recordings)}
    sups = _load(lhotse.SupervisionSet, supervisions)
    if not sups:
        raise ScpcError(f"{supervisions}: no supervisions")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_reco: dict[str, list] = {}
    for s in sups:
        if s.recording_id not in recs:
            raise ScpcError(f"{supervisions}: {s.id} names an unknown recording {s.recording_id}")
        by_reco.setdefault(s.recording_id, []).append(s)
    whole = all(
        len(v) == 1
        and v[0].id == r
        and v[0].start == 0
        and abs(v[0].duration - recs[r].duration) < 1e-6
        for r, v in by_reco.items()
    )
    wav = {r: _wav_entry(recs[r]) for r in by_reco}
    write_table(out / "wav.scp", wav)
    utts = {s.id: s for s in sups}
    if len(utts) != len(sups):
        raise ScpcError(f"{supervisions}: supervision ids repeat")
    if not whole:
        write_table(
            out / "segments",
            {
                u: f"{s.recording_id} {s.start:.4f} {s.start + s.duration:.4f}"
                for u, s in utts.items()
            },
        )
    missing = [u for u, s in utts.items() if s.speaker is None]
    if missing:
        raise ScpcError(f"{supervisions}: {missing[0]} has no speaker (Kaldi needs utt2spk)")
    utt2spk = OrderedDict(sorted((u, s.speaker) for u, s in utts.items()))
    write_table(out / "utt2spk", utt2spk)
    write_table(out / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    if any(s.text is not None for s in sups):
        write_table(out / "text", {u: " ".join((s.text or "").split()) for u, s in utts.items()})
    genders = {s.speaker: s.gender for s in sups if s.gender}
    if genders:
        write_table(out / "spk2gender", genders)
    write_table(out / "utt2dur", {u: f"{s.duration:.4f}" for u, s in utts.items()})
    if whole:
        write_table(out / "utt2num_samples", {u: str(recs[u].num_samples) for u in utts})
    _write_alignments(out, utts, phones)
    _write_items(out, utts)
    if cuts is not None:
        _write_features(lhotse, cuts, out, set(utts))
    validate(out)
    return len(utts)


def _load(kind, path) -> list:
    """The items of a manifest, read in full here so that a malformed line fails here."""
    try:
        items = list(kind.from_file(path) or [])
        for item in items:
            if not hasattr(item, "id"):
                raise TypeError(f"an entry of type {type(item).__name__}")
        return items
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - a malformed manifest is one line
        raise ScpcError(f"{path}: not a lhotse {kind.__name__} ({type(e).__name__}: {e})") from None


def _write_alignments(out: Path, utts: dict, phones: str | os.PathLike | None) -> None:
    runs = {
        u: _frames(s.alignment["phone"], s.start)
        for u, s in utts.items()
        if s.alignment and "phone" in s.alignment
    }
    if not runs:
        return
    symbols = {p for r in runs.values() for p, _ in r}
    if phones is not None:
        table = read_phone_table(phones)
    elif symbols <= set(PHONES):
        table = {p: i for i, p in enumerate(PHONES)}
    else:
        table = {p: i for i, p in enumerate(sorted(symbols))}
    unknown = sorted(symbols - set(table))
    if unknown:
        raise ScpcError(f"{phones}: no phone {unknown[0]!r} (an alignment has it)")
    write_phone_table(out / "phones.txt", sorted(table, key=table.get))
    write_alignments(
        out / "ali.txt",
        ((u, [table[p] for p, n in runs[u] for _ in range(n)]) for u in sorted(runs)),
    )


def _write_items(out: Path, utts: dict) -> None:
    rows = [
        Item(u, float(r[0]), float(r[1]), *map(str, r[2:]))
        for u in sorted(utts)
        for r in (utts[u].custom or {}).get("abx_items", [])
    ]
    if rows:
        write_items(out / "abx.item", rows)


def _write_features(lhotse, cuts_path, out: Path, utts: set[str]) -> None:
    import kaldiio

    cuts = _load(lhotse.CutSet, cuts_path)
    shifts = set()
    with atomic_path(out / "feats.scp") as tmp_scp:
        with kaldiio.WriteHelper(f"ark,scp:{(out / 'feats.ark').resolve()},{tmp_scp}") as w:
            frames = []
            for cut in sorted(cuts, key=lambda c: c.id):
                if not cut.has_features:
                    continue
                if cut.id not in utts:
                    raise ScpcError(f"{cuts_path}: cut {cut.id} is no supervision's utterance")
                mat = cut.load_features()
                w(cut.id, np.asarray(mat, dtype=np.float32))
                frames.append((cut.id, str(mat.shape[0])))
                shifts.add(cut.features.frame_shift)
        if len(shifts) > 1:
            raise ScpcError(f"{cuts_path}: features of several frame shifts ({sorted(shifts)})")
        write_table(out / "utt2num_frames", frames)
        if shifts:
            with atomic_path(out / FRAME_SHIFT_FILE) as tmp:
                tmp.write_text(f"{shifts.pop():g}\n")
