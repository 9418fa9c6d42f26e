"""Speech Commands v0.01 to Kaldi data dirs for the 12-class SUPERB keyword-spotting task."""

from __future__ import annotations

import os
import re
from pathlib import Path

import soundfile as sf

from scpc.data import datadir as dd
from scpc.errors import ScpcError

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
BACKGROUND = "_background_noise_"
SPEAKER = re.compile(r"([0-9a-f]{8})_nohash_(\d+)\.wav$")


def label(word: str) -> str:
    return word if word in COMMANDS or word == SILENCE else UNKNOWN


def _clip(root: Path, rel: str) -> tuple[str, str, dict[str, str]]:
    """Utterance id, speaker and table entries for one clip ``<word>/<hash>_nohash_<n>.wav``."""
    word, name = rel.split("/")
    m = SPEAKER.search(name)
    if not m:
        raise ScpcError(f"{root / rel}: name is not <speaker-hash>_nohash_<n>.wav")
    spk, n = m.groups()
    prefix = name[: m.start()].rstrip("_")
    utt = f"{spk}-{word}-{prefix + '-' if prefix else ''}{n}"
    return (
        utt,
        spk,
        {
            "wav.scp": str(root / rel),
            "text": word if word != UNKNOWN else prefix,
            "utt2label": label(word),
        },
    )


def _write(
    dest: Path,
    entries: dict[str, tuple[str, dict[str, str]]],
    segments: dict | None = None,
    recos: dict | None = None,
) -> str:
    if not entries:
        raise ScpcError(f"{dest}: no clips for this set")
    dest.mkdir(parents=True, exist_ok=True)
    utt2spk = {u: spk for u, (spk, _) in entries.items()}
    for name in ("text", "utt2label"):
        dd.write_table(dest / name, {u: e[name] for u, (_, e) in entries.items()})
    if segments:
        wav = dict(recos or {})
        for u, (_, e) in entries.items():
            if u not in segments:
                wav[u] = e["wav.scp"]
                segments[u] = f"{u} 0 -1"
        dd.write_table(dest / "segments", segments)
        dd.write_table(dest / "wav.scp", wav)
    else:
        dd.write_table(dest / "wav.scp", {u: e["wav.scp"] for u, (_, e) in entries.items()})
    dd.write_table(dest / "utt2spk", utt2spk)
    dd.write_table(dest / "spk2utt", dd.utt2spk_to_spk2utt(utt2spk))
    dd.write_utt2dur(dest)
    return dd.validate(dest)


def _silence_windows(root: Path, offset: float, count: int) -> tuple[dict, dict, dict]:
    """``count`` one-second windows of the background noise files, starting at ``offset`` s
    into each and one second apart, taken round-robin over the files."""
    noises = sorted((root / BACKGROUND).glob("*.wav"))
    if not noises:
        raise ScpcError(f"{root / BACKGROUND}: no background noise .wav files")
    starts = {n: offset for n in noises}
    lengths = {n: sf.info(n).duration for n in noises}
    entries, segments, recos = {}, {}, {}
    k = 0
    while len(entries) < count and any(starts[n] + 1 <= lengths[n] for n in noises):
        for n in noises:
            if len(entries) >= count or starts[n] + 1 > lengths[n]:
                continue
            reco = f"{BACKGROUND}-{n.stem}"
            utt = f"silence-{n.stem}-{k:04d}"
            recos[reco] = str(n)
            segments[utt] = f"{reco} {starts[n]:.2f} {starts[n] + 1:.2f}"
            entries[utt] = ("silence", {"wav.scp": str(n), "text": "", "utt2label": SILENCE})
            starts[n] += 1
        k += 1
    return entries, segments, recos


def prepare(
    root: str | os.PathLike, dest: str | os.PathLike, test_root: str | os.PathLike | None = None
) -> list[str]:
    """``dest/{train,valid,test}`` from a v0.01 tree; the test set from ``test_root`` (the
    official test set, folders per label including _unknown_ and _silence_) when given,
    else from ``testing_list.txt``. Silence for train and valid is cut from the background
    noise: as many one-second windows as the average word class has clips."""
    root, dest = Path(root).resolve(), Path(dest)
    for name in ("validation_list.txt", "testing_list.txt"):
        if not (root / name).is_file():
            raise ScpcError(
                f"{root / name}: no such file (is {root} a Speech Commands v0.01 tree?)"
            )
    held_out = {}
    for name, part in (("validation_list.txt", "valid"), ("testing_list.txt", "test")):
        for line in (root / name).read_text().split():
            held_out[line] = part
    sets: dict[str, dict] = {"train": {}, "valid": {}, "test": {}}
    for wav in sorted(root.glob("*/*.wav")):
        rel = f"{wav.parent.name}/{wav.name}"
        if wav.parent.name == BACKGROUND:
            continue
        utt, spk, entry = _clip(root, rel)
        sets[held_out.get(rel, "train")][utt] = (spk, entry)
    missing = [r for r in held_out if not (root / r).is_file()]
    if missing:
        raise ScpcError(
            f"{root}: {len(missing)} clips in the lists are missing (first: {missing[0]})"
        )
    summaries = []
    for part, offset in (("train", 0.0), ("valid", 0.5)):
        entries = sets[part]
        words = {e["text"] for _, e in entries.values()}
        per_class = max(1, round(len(entries) / max(1, len(words))))
        silence, segments, recos = _silence_windows(root, offset, per_class)
        summaries.append(_write(dest / part, {**entries, **silence}, segments, recos))
    if test_root is not None:
        test_root = Path(test_root).resolve()
        entries = {}
        for wav in sorted(test_root.glob("*/*.wav")):
            folder = wav.parent.name
            if folder == SILENCE:
                utt = f"silence-{wav.stem}"
                entries[utt] = ("silence", {"wav.scp": str(wav), "text": "", "utt2label": SILENCE})
                continue
            utt, spk, entry = _clip(test_root, f"{folder}/{wav.name}")
            entries[utt] = (spk, entry)
        if not entries:
            raise ScpcError(f"{test_root}: no <label>/*.wav clips found")
        summaries.append(_write(dest / "test", entries))
    else:
        silence, segments, recos = _silence_windows(root, 0.25, max(1, len(sets["test"]) // 11))
        summaries.append(_write(dest / "test", {**sets["test"], **silence}, segments, recos))
    return summaries
