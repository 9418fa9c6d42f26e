"""The deterministic plan of the mini corpus: who says what, with which voice settings.

Everything random is drawn from a generator seeded by a stable hash of a key (a speaker, an
utterance), so regenerating one utterance gives exactly what a full run gives.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEED = 20261121
SAMPLE_RATE = 16000
CHAPTERS_PER_SPEAKER = 3
UTTS_PER_CHAPTER = 6
# Sentence lists are split by part so that dev and test text is never seen in training.
SENTENCE_LISTS = {"train": range(1, 25), "dev": range(25, 30), "test": range(30, 35)}
SENTENCES_PER_UTT = {1: 0.62, 2: 0.30, 3: 0.08}
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
OTHER_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "tree", "wow")
COMMAND_REPEATS = 1
OTHER_REPEATS = 1
KEYWORD_CLIP_SAMPLES = SAMPLE_RATE  # Speech Commands clips are one second long
NOISES = ("white_noise", "pink_noise", "brown_noise", "mains_hum")
NOISE_SECONDS = 6.0
TRIALS_PER_UTT = 4  # ASV trials per enrolment utterance: two target, two non-target

VOICES = {
    # voice: (engine, voice name, sex of the base voice, whether its pitch can be set)
    "kal16": ("flite", "kal16", "M", True),
    "awb": ("flite", "awb", "M", True),
    "rms": ("flite", "rms", "M", False),
    "slt": ("flite", "slt", "F", True),
    "ked": ("festival", "ked_diphone", "M", True),
}


@dataclass(frozen=True)
class Speaker:
    id: str
    voice: str
    f0: float | None  # target mean pitch in Hz after the formant shift; None keeps the voice's
    formant: float  # >1 raises formants (shorter vocal tract), applied by resampling
    tempo: float  # >1 speaks more slowly
    tilt: float  # first-order spectral tilt of the "channel"
    peak_db: float  # peak level of each recording
    sex: str
    part: str


# id, voice, f0, formant, tempo, tilt, peak dBFS, sex, part
SPEAKERS = tuple(
    Speaker(*row)
    for row in [
        ("121", "kal16", 105, 1.00, 1.00, 0.0, -12.5, "M", "train"),
        ("237", "kal16", 128, 0.95, 0.92, 0.3, -14.5, "M", "train"),
        ("1089", "kal16", 205, 1.13, 1.05, -0.2, -13.5, "F", "dev"),
        ("1320", "kal16", 185, 1.10, 0.95, 0.2, -15.5, "F", "test"),
        ("1462", "awb", 100, 1.00, 1.00, -0.3, -13.5, "M", "train"),
        ("1580", "awb", 205, 1.14, 0.94, 0.1, -12.5, "F", "train"),
        ("1673", "awb", 118, 0.93, 1.08, 0.35, -14.5, "M", "dev"),
        ("1995", "awb", 190, 1.10, 1.00, -0.1, -13.5, "F", "test"),
        ("2086", "rms", None, 1.00, 1.00, 0.0, -13.5, "M", "train"),
        ("2277", "rms", None, 0.92, 1.06, -0.35, -15.5, "M", "train"),
        ("2412", "rms", None, 1.07, 0.92, 0.25, -12.5, "M", "train"),
        ("2830", "rms", None, 0.96, 1.12, -0.15, -14.5, "M", "test"),
        ("3081", "slt", 175, 1.00, 1.00, 0.0, -13.5, "F", "train"),
        ("3170", "slt", 205, 1.05, 0.95, -0.25, -14.5, "F", "train"),
        ("3575", "slt", 160, 0.97, 1.08, 0.3, -12.5, "F", "dev"),
        ("3729", "slt", 120, 0.88, 1.04, -0.3, -15.5, "M", "test"),
        ("4077", "ked", 110, 1.00, 1.00, 0.15, -13.5, "M", "train"),
        ("4446", "ked", 135, 0.96, 0.93, -0.2, -12.5, "M", "train"),
        ("4507", "ked", 195, 1.12, 1.05, 0.3, -14.5, "F", "train"),
        ("4970", "ked", 100, 1.03, 1.10, -0.1, -13.5, "M", "dev"),
    ]
)


@dataclass(frozen=True)
class Rendering:
    """How to synthesise one recording: text and the speaker's settings with jitter."""

    speaker: Speaker
    text: str
    f0: float | None
    tempo: float
    peak_db: float
    seed: int


@dataclass(frozen=True)
class Utterance:
    id: str  # <spk>-<chapter>-<nnnn>, as in LibriSpeech
    chapter: str
    sentence_ids: tuple[str, ...]
    rendering: Rendering


@dataclass(frozen=True)
class KeywordClip:
    word: str
    repeat: int
    sc_speaker: str  # Speech Commands' 8-hex-digit speaker hash
    rendering: Rendering

    @property
    def path(self) -> str:
        return f"{self.word}/{self.sc_speaker}_nohash_{self.repeat}.wav"


@dataclass
class Plan:
    sentences: dict[str, str]
    speakers: tuple[Speaker, ...] = SPEAKERS
    chapters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    utterances: list[Utterance] = field(default_factory=list)
    keywords: list[KeywordClip] = field(default_factory=list)


def stable_seed(*key: object) -> int:
    digest = hashlib.sha256(":".join(map(str, (SEED,) + key)).encode()).hexdigest()
    return int(digest[:8], 16)


def rng_for(*key: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed(*key))


def read_sentences(path: Path) -> dict[str, str]:
    sentences = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            sid, text = line.split(" ", 1)
            sentences[sid] = text.strip()
    return sentences


def transcript(text: str) -> str:
    """LibriSpeech-style transcript: upper case, apostrophes kept, other punctuation gone."""
    words = re.sub(r"[^A-Za-z' ]+", " ", text.replace("-", " ")).upper().split()
    return " ".join(words)


def speech_commands_speaker(speaker: Speaker) -> str:
    """An 8-hex-digit id whose TensorFlow hash split puts the speaker in its part."""
    wanted = {"train": "training", "dev": "validation", "test": "testing"}[speaker.part]
    for attempt in range(10_000):
        candidate = hashlib.sha1(f"{SEED}:{speaker.id}:{attempt}".encode()).hexdigest()[:8]
        if speech_commands_set(candidate) == wanted:
            return candidate
    raise RuntimeError(f"no Speech Commands id found for speaker {speaker.id}")


def speech_commands_set(speaker_hash: str, validation: float = 10, testing: float = 10) -> str:
    """TensorFlow's ``which_set``: the split a Speech Commands speaker belongs to."""
    max_per_class = 2**27 - 1
    hashed = int(hashlib.sha1(speaker_hash.encode()).hexdigest(), 16)
    percentage = (hashed % (max_per_class + 1)) * (100.0 / max_per_class)
    if percentage < validation:
        return "validation"
    if percentage < validation + testing:
        return "testing"
    return "training"


def jittered(speaker: Speaker, text: str, key: tuple) -> Rendering:
    """Per-recording variation, so that no two renderings of a phone are identical."""
    rng = rng_for("render", *key)
    f0 = None if speaker.f0 is None else float(speaker.f0 * rng.uniform(0.94, 1.06))
    tempo = float(speaker.tempo * rng.uniform(0.95, 1.05))
    peak_db = float(speaker.peak_db + rng.uniform(-1.5, 1.5))
    return Rendering(speaker, text, f0, tempo, peak_db, stable_seed("signal", *key))


def make_plan(sentences: dict[str, str]) -> Plan:
    plan = Plan(sentences)
    by_list: dict[int, list[str]] = {}
    for sid in sentences:
        by_list.setdefault(int(sid.split(".")[0]), []).append(sid)
    counts, probs = zip(*SENTENCES_PER_UTT.items())
    for spk in SPEAKERS:
        rng = rng_for("speaker", spk.id)
        pool = [sid for lst in SENTENCE_LISTS[spk.part] for sid in by_list[lst]]
        order = list(rng.permutation(pool))
        chapters = tuple(
            str(c) for c in sorted(rng.choice(np.arange(10_000, 300_000), CHAPTERS_PER_SPEAKER))
        )
        plan.chapters[spk.id] = chapters
        for chapter in chapters:
            for n in range(UTTS_PER_CHAPTER):
                k = int(rng.choice(counts, p=probs))
                if len(order) < k:
                    order += list(rng.permutation(pool))
                sids, order = tuple(order[:k]), order[k:]
                uid = f"{spk.id}-{chapter}-{n:04d}"
                text = " ".join(sentences[s] for s in sids)
                plan.utterances.append(Utterance(uid, chapter, sids, jittered(spk, text, (uid,))))
        sc_id = speech_commands_speaker(spk)
        for word in COMMANDS + OTHER_WORDS:
            repeats = COMMAND_REPEATS if word in COMMANDS else OTHER_REPEATS
            for r in range(repeats):
                rendering = jittered(spk, word, ("keyword", spk.id, word, r))
                plan.keywords.append(KeywordClip(word, r, sc_id, rendering))
    return plan
