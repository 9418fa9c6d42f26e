"""LibriSpeech (and the mini corpus, which has its layout) to Kaldi data dirs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import soundfile as sf

from scpc.data import datadir as dd
from scpc.data.alignment import read_phone_table
from scpc.errors import ScpcError

UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def read_speakers(path: Path) -> dict[str, str]:
    """Speaker id to gender ("m"/"f") from SPEAKERS.TXT."""
    genders = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 3 or fields[1].upper() not in ("M", "F"):
            raise ScpcError(f"{path}:{lineno}: expected 'ID | SEX | SUBSET | ...'")
        genders[fields[0]] = fields[1].lower()
    return genders


def prepare_part(src: str | os.PathLike, dest: str | os.PathLike) -> str:
    """One LibriSpeech part (``<src>/<spk>/<chapter>/*.trans.txt``) to a data dir."""
    src, dest = Path(src).resolve(), Path(dest)
    if not src.is_dir():
        raise ScpcError(f"{src}: no such LibriSpeech part directory")
    text, wav, utt2spk, utt2dur = {}, {}, {}, {}
    for trans in sorted(src.glob("*/*/*.trans.txt")):
        spk, chapter = trans.parent.parent.name, trans.parent.name
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt, _, words = line.partition(" ")
            m = UTT_ID.match(utt)
            if not m or m.group(1) != spk or m.group(2) != chapter:
                raise ScpcError(
                    f"{trans}:{lineno}: utterance id {utt!r} does not match {spk}/{chapter}"
                )
            flac = trans.parent / f"{utt}.flac"
            if not flac.is_file():
                raise ScpcError(f"{trans}:{lineno}: {flac} is missing")
            try:
                info = sf.info(flac)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise ScpcError(f"{flac}: not a readable audio file ({e})") from None
            text[utt], wav[utt], utt2spk[utt] = words.strip(), str(flac), spk
            utt2dur[utt] = f"{info.frames / info.samplerate:.4f}"
    if not utt2spk:
        raise ScpcError(f"{src}: no */*/*.trans.txt transcripts found")
    speakers_txt = src.parent / "SPEAKERS.TXT"
    dest.mkdir(parents=True, exist_ok=True)
    dd.write_table(dest / "text", text)
    dd.write_table(dest / "wav.scp", wav)
    dd.write_table(dest / "utt2spk", utt2spk)
    dd.write_table(dest / "spk2utt", dd.utt2spk_to_spk2utt(utt2spk))
    dd.write_table(dest / "utt2dur", utt2dur)
    if speakers_txt.is_file():
        genders = read_speakers(speakers_txt)
        speakers = set(utt2spk.values())
        missing = sorted(speakers - set(genders))
        if missing:
            raise ScpcError(f"{speakers_txt}: speaker {missing[0]} is not listed")
        dd.write_table(dest / "spk2gender", {s: genders[s] for s in speakers})
    return dd.validate(dest)


def attach_alignments(
    dest: str | os.PathLike,
    alignments: str | os.PathLike,
    phones: str | os.PathLike,
    items: str | os.PathLike | None = None,
    strip_prefix: str = "",
) -> str:
    """Add frame alignments (``ali.txt``, ``phones.txt``) and an ABX item file to a data dir,
    restricted to its utterances."""
    d = dd.DataDir(dest)
    utts = set(d.utts())
    read_phone_table(phones)  # fails early on a malformed table
    table = {}
    with open(alignments, encoding="utf-8") as f:
        for line in f:
            utt, _, labels = line.strip().partition(" ")
            utt = utt.removeprefix(strip_prefix)
            if utt in utts:
                table[utt] = labels
    if not table:
        raise ScpcError(f"{alignments}: has no alignment for any utterance of {d.path}")
    dd.write_table(d.file("ali.txt"), table)
    d.file("phones.txt").write_bytes(Path(phones).read_bytes())
    if items is not None:
        dd.filter_lines(Path(items), d.file("abx.item"), lambda f: f[0] in utts, header=True)
    return dd.validate(dest)


def read_id_list(path: str | os.PathLike, strip_prefix: str = "lbi-") -> list[str]:
    try:
        return [line.split()[0].removeprefix(strip_prefix) for line in open(path) if line.strip()]
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file") from None


def cpc_split(
    src: str | os.PathLike, train_list: str, val_list: str, train_dest: str, val_dest: str
) -> tuple[str, str]:
    """The CPC paper's train/validation split of train-clean-100 as two subsets of ``src``.

    With ``train_list`` "-", training gets every utterance of ``src`` outside the validation
    list (the 460 h and 960 h setups, where ``src`` combines several parts).
    """
    utts = dd.DataDir(src).utts()
    val = read_id_list(val_list)
    train = (
        [u for u in utts if u not in set(val)] if train_list == "-" else read_id_list(train_list)
    )
    for list_file, ids in ((train_list, train), (val_list, val)):
        missing = [u for u in ids if u not in set(utts)]
        if missing:
            raise ScpcError(
                f"{list_file}: {len(missing)} utterances are not in {src} (first: {missing[0]})"
            )
    dd.copy_filtered(src, train_dest, train)
    dd.copy_filtered(src, val_dest, val)
    return dd.validate(train_dest), dd.validate(val_dest)
