"""VoxCeleb1 to Kaldi data dirs: closed-set identification (SUPERB SID) and verification (ASV)."""

from __future__ import annotations

import os
from pathlib import Path

import soundfile as sf

from scpc.data import datadir as dd
from scpc.errors import ScpcError

SID_SETS = {"1": "sid_train", "2": "sid_dev", "3": "sid_test"}


def utt_id(rel: str) -> str:
    """``id10001/1zcIwhmdeo4/00001.wav`` -> ``id10001-1zcIwhmdeo4-00001``."""
    parts = rel.split("/")
    if len(parts) != 3 or not parts[2].endswith(".wav"):
        raise ScpcError(f"{rel}: not a VoxCeleb1 path <speaker>/<video>/<n>.wav")
    return "-".join([parts[0], parts[1], parts[2][:-4]])


def read_genders(meta: Path) -> dict[str, str]:
    genders = {}
    for lineno, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        if lineno == 1 or len(fields) < 3:
            continue
        genders[fields[0].strip()] = fields[2].strip().lower()
    return genders


def _write(dest: Path, rels: list[str], wav_root: Path, genders: dict[str, str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    wav, utt2spk, utt2dur = {}, {}, {}
    for rel in rels:
        path = wav_root / rel
        if not path.is_file():
            raise ScpcError(f"{path}: listed but missing")
        utt = utt_id(rel)
        wav[utt], utt2spk[utt] = str(path), rel.split("/")[0]
        utt2dur[utt] = f"{sf.info(path).duration:.4f}"
    dd.write_table(dest / "wav.scp", wav)
    dd.write_table(dest / "utt2spk", utt2spk)
    dd.write_table(dest / "spk2utt", dd.utt2spk_to_spk2utt(utt2spk))
    dd.write_table(dest / "utt2dur", utt2dur)
    speakers = set(utt2spk.values())
    if speakers <= set(genders):
        dd.write_table(dest / "spk2gender", {s: genders[s] for s in speakers})


def prepare(
    root: str | os.PathLike, dest: str | os.PathLike, trials: str = "veri_test.txt"
) -> list[str]:
    """From ``root`` with ``wav/``, ``iden_split.txt`` and a trial list, write ``dest/sid_{train,
    dev,test}``, ``dest/asv_train`` (speakers absent from the trials) and ``dest/asv_test``
    (utterances in the trials, with a Kaldi ``trials`` file)."""
    root, dest = Path(root).resolve(), Path(dest)
    wav_root = root / "wav"
    for need in (wav_root, root / "iden_split.txt", root / trials):
        if not need.exists():
            raise ScpcError(f"{need}: missing (see local/download_voxceleb1.sh)")
    genders = read_genders(root / "vox1_meta.csv") if (root / "vox1_meta.csv").is_file() else {}
    sid: dict[str, list[str]] = {name: [] for name in SID_SETS.values()}
    for lineno, line in enumerate((root / "iden_split.txt").read_text().splitlines(), 1):
        fields = line.split()
        if len(fields) != 2 or fields[0] not in SID_SETS:
            raise ScpcError(
                f"{root / 'iden_split.txt'}:{lineno}: expected '1|2|3 <spk>/<video>/<n>.wav'"
            )
        sid[SID_SETS[fields[0]]].append(fields[1])
    summaries = []
    for name, rels in sid.items():
        _write(dest / name, rels, wav_root, genders)
        summaries.append(dd.validate(dest / name, text=False))
    trial_rows = []
    for lineno, line in enumerate((root / trials).read_text().splitlines(), 1):
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise ScpcError(f"{root / trials}:{lineno}: expected '1|0 <enroll> <test>'")
        trial_rows.append(fields)
    test_rels = sorted({r for row in trial_rows for r in row[1:]})
    test_speakers = {r.split("/")[0] for r in test_rels}
    train_rels = sorted(
        f"{p.parent.parent.name}/{p.parent.name}/{p.name}"
        for p in wav_root.glob("*/*/*.wav")
        if p.parent.parent.name not in test_speakers
    )
    _write(dest / "asv_train", train_rels, wav_root, genders)
    _write(dest / "asv_test", test_rels, wav_root, genders)
    with open(dest / "asv_test" / "trials", "w") as f:
        for label, enroll, test in trial_rows:
            f.write(
                f"{utt_id(enroll)} {utt_id(test)} {'target' if label == '1' else 'nontarget'}\n"
            )
    summaries += [dd.validate(dest / n, text=False) for n in ("asv_train", "asv_test")]
    return summaries
