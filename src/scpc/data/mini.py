"""The committed mini corpus: integrity check and the format-faithful Speech Commands and
VoxCeleb1 trees built from it (the committed form is FLAC; those corpora ship .wav)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import soundfile as sf

from scpc.errors import ScpcError
from scpc.io import atomic_path

MANIFEST = "MANIFEST.sha256"


def verify_manifest(corpus: str | os.PathLike) -> int:
    """Check every file against MANIFEST.sha256; returns the number of files."""
    corpus = Path(corpus)
    manifest = corpus / MANIFEST
    if not manifest.is_file():
        raise ScpcError(f"{manifest}: no such file (is {corpus} the mini corpus?)")
    lines = manifest.read_text().splitlines()
    for line in lines:
        digest, rel = line.split("  ", 1)
        path = corpus / rel
        if not path.is_file():
            raise ScpcError(f"{path}: missing from the mini corpus")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise ScpcError(
                f"{path}: checksum mismatch (corrupt or edited; restore it with git or regenerate "
                "with local/make_mini_corpus.sh)"
            )
    return len(lines)


def _flac_to_wav(src: Path, dest: Path) -> None:
    x, sr = sf.read(src, dtype="int16")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        sf.write(tmp, x, sr, format="WAV", subtype="PCM_16")


def build_speech_commands(corpus: Path, dest: Path) -> None:
    """``speech_commands_v0.01/`` and ``speech_commands_test_set_v0.01/`` as Google ships them."""
    src = corpus / "speech_commands"
    train_root = dest / "speech_commands_v0.01"
    test_root = dest / "speech_commands_test_set_v0.01"
    for root in (train_root, test_root):
        if root.exists():
            shutil.rmtree(root)
    for flac in sorted(src.glob("*/*.flac")):
        _flac_to_wav(flac, train_root / flac.parent.name / (flac.stem + ".wav"))
    for name in ("validation_list.txt", "testing_list.txt"):
        shutil.copyfile(src / name, train_root / name)
    commands = {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"}
    tests = (src / "testing_list.txt").read_text().split()
    for rel in tests:
        word, name = rel.split("/")
        folder, name = (word, name) if word in commands else ("_unknown_", f"{word}_{name}")
        (test_root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(train_root / rel, test_root / folder / name)
    # _silence_ clips of the official test set: one-second cuts of the background noise
    noises = sorted((src / "_background_noise_").glob("*.flac"))
    count = max(1, len(tests) // 11)
    for k in range(count):
        x, sr = sf.read(noises[k % len(noises)], dtype="int16")
        start = (k // len(noises)) * sr + sr // 4
        (test_root / "_silence_").mkdir(parents=True, exist_ok=True)
        sf.write(
            test_root / "_silence_" / f"silence_{k:04d}.wav",
            x[start : start + sr],
            sr,
            subtype="PCM_16",
        )


def build_voxceleb1(corpus: Path, dest: Path) -> None:
    """``voxceleb1/wav/<id>/<video>/<n>.wav`` with iden_split.txt, veri_test.txt, vox1_meta.csv."""
    src = corpus / "voxceleb1"
    root = dest / "voxceleb1"
    if root.exists():
        shutil.rmtree(root)
    flacs = {p.stem: p for p in (corpus / "LibriSpeech").glob("*/*/*/*.flac")}
    speakers = {}
    for line in (src / "utt_map.txt").read_text().splitlines():
        rel, utt = line.split()
        _flac_to_wav(flacs[utt], root / "wav" / rel)
        speakers[rel.split("/")[0]] = utt.split("-")[0]
    for name in ("iden_split.txt", "veri_test.txt"):
        shutil.copyfile(src / name, root / name)
    genders = {}
    for line in (corpus / "LibriSpeech" / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        genders[fields[0]] = fields[1].lower()
    test_ids = {
        line.split()[i].split("/")[0]
        for line in (src / "veri_test.txt").read_text().splitlines()
        for i in (1, 2)
    }
    with open(root / "vox1_meta.csv", "w") as f:
        f.write("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n")
        for vid, spk in sorted(speakers.items()):
            f.write(
                f"{vid}\tspeaker_{spk}\t{genders[spk]}\tsynthetic\t{'test' if vid in test_ids else 'dev'}\n"
            )


def build_layouts(corpus: str | os.PathLike, dest: str | os.PathLike) -> None:
    corpus, dest = Path(corpus), Path(dest)
    build_speech_commands(corpus, dest)
    build_voxceleb1(corpus, dest)
