"""Generate the mini corpus: LibriSpeech, Speech Commands and VoxCeleb1 layouts, alignments.

Run through ``local/make_mini_corpus.sh``; needs flite and festival (Debian packages).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from scpc.data import alignment as ali

from . import plan as P
from .tts import require_tools, synthesize
from .voice import noise, shape, to_int16

HERE = Path(__file__).parent
PARTS = ("train", "dev", "test")


def render_utterances(utts: list[P.Utterance]) -> list[tuple[np.ndarray, list[ali.Segment]]]:
    out = []
    for utt, syn in zip(utts, synthesize([u.rendering for u in utts])):
        x, segments = shape(syn, utt.rendering)
        out.append(
            (
                to_int16(x, utt.rendering.peak_db, np.random.default_rng(utt.rendering.seed)),
                segments,
            )
        )
    return out


def render_keywords(clips: list[P.KeywordClip]) -> list[np.ndarray]:
    out = []
    for clip, syn in zip(clips, synthesize([c.rendering for c in clips])):
        x, segments = shape(syn, clip.rendering)
        spoken = [s for s in segments if s.phone != ali.SILENCE]
        lo = max(0, int((spoken[0].start - 0.03) * P.SAMPLE_RATE))
        hi = min(len(x), int((spoken[-1].end + 0.03) * P.SAMPLE_RATE))
        word = x[lo:hi][: P.KEYWORD_CLIP_SAMPLES]
        rng = np.random.default_rng(clip.rendering.seed)
        offset = int(rng.integers(0, P.KEYWORD_CLIP_SAMPLES - len(word) + 1))
        canvas = np.zeros(P.KEYWORD_CLIP_SAMPLES)
        canvas[offset : offset + len(word)] = word
        out.append(to_int16(canvas, clip.rendering.peak_db, rng))
    return out


def _render_speaker(args):
    utts, clips = args
    return render_utterances(utts), render_keywords(clips)


def write_flac(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, P.SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)


def video_id(chapter: str) -> str:
    """An 11-character YouTube-like id for a chapter, as VoxCeleb1 names its videos."""
    digest = hashlib.sha1(f"{P.SEED}:video:{chapter}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def vox_ids(plan: P.Plan) -> dict[str, str]:
    """VoxCeleb1 ids: training speakers as its dev speakers, dev/test ones as its test speakers."""
    ids, dev_n, test_n = {}, 10001, 10270
    for spk in plan.speakers:
        if spk.part == "train":
            ids[spk.id], dev_n = f"id{dev_n}", dev_n + 1
        else:
            ids[spk.id], test_n = f"id{test_n}", test_n + 1
    return ids


def generate(out: Path, jobs: int) -> dict:
    require_tools()
    plan = P.make_plan(P.read_sentences(HERE / "harvard_sentences.txt"))
    by_spk_utts = defaultdict(list)
    for u in plan.utterances:
        by_spk_utts[u.rendering.speaker.id].append(u)
    by_spk_clips = defaultdict(list)
    for c in plan.keywords:
        by_spk_clips[c.rendering.speaker.id].append(c)
    spk_ids = [s.id for s in plan.speakers]
    with multiprocessing.Pool(jobs) as pool:
        rendered = pool.map(_render_speaker, [(by_spk_utts[s], by_spk_clips[s]) for s in spk_ids])

    if out.exists():
        shutil.rmtree(out)
    audio, segments, clips = {}, {}, {}
    for s, (utt_out, clip_out) in zip(spk_ids, rendered):
        for u, (x, seg) in zip(by_spk_utts[s], utt_out):
            audio[u.id], segments[u.id] = x, seg
        for c, x in zip(by_spk_clips[s], clip_out):
            clips[c.path] = x

    write_librispeech(out / "LibriSpeech", plan, audio)
    write_alignments(out / "alignments", plan, audio, segments)
    write_speech_commands(out / "speech_commands", plan, clips)
    write_voxceleb(out / "voxceleb1", plan)
    stats = statistics(plan, audio, segments, clips)
    write_readme(out / "README.md", stats)
    write_manifest(out)
    stats["megabytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    return stats


def write_librispeech(root: Path, plan: P.Plan, audio: dict[str, np.ndarray]) -> None:
    minutes = defaultdict(float)
    chapter_minutes = defaultdict(float)
    by_chapter = defaultdict(list)
    for u in plan.utterances:
        spk = u.rendering.speaker
        write_flac(root / spk.part / spk.id / u.chapter / f"{u.id}.flac", audio[u.id])
        by_chapter[(spk, u.chapter)].append(u)
        minutes[spk.id] += len(audio[u.id]) / P.SAMPLE_RATE / 60
        chapter_minutes[u.chapter] += len(audio[u.id]) / P.SAMPLE_RATE / 60
    for (spk, chapter), utts in by_chapter.items():
        lines = [f"{u.id} {P.transcript(u.rendering.text)}\n" for u in utts]
        (root / spk.part / spk.id / chapter / f"{spk.id}-{chapter}.trans.txt").write_text(
            "".join(lines)
        )
    with open(root / "SPEAKERS.TXT", "w") as f:
        f.write("; scpc mini corpus: synthetic pseudo-speakers, see ../README.md\n")
        f.write(";ID  |SEX| SUBSET           |MINUTES| NAME\n")
        for spk in sorted(plan.speakers, key=lambda s: int(s.id)):
            f0 = "native" if spk.f0 is None else f"{spk.f0:.0f}Hz"
            name = f"{spk.voice} f0={f0} formant={spk.formant:.2f} tempo={spk.tempo:.2f}"
            f.write(f"{spk.id:<5}| {spk.sex} | {spk.part:<17}| {minutes[spk.id]:5.2f} | {name}\n")
    with open(root / "CHAPTERS.TXT", "w") as f:
        f.write("; scpc mini corpus: each chapter is a block of Harvard sentences\n")
        f.write(
            ";ID    |READER|MINUTES| SUBSET           | PROJ.|BOOK ID| CH. TITLE | PROJECT TITLE\n"
        )
        for spk in sorted(plan.speakers, key=lambda s: int(s.id)):
            for c in plan.chapters[spk.id]:
                f.write(
                    f"{c:<7}| {spk.id:<5}| {chapter_minutes[c]:5.2f} | {spk.part:<17}| 0     | 0     "
                    f"| Harvard sentences | scpc mini corpus\n"
                )


def write_alignments(root, plan, audio, segments) -> None:
    phone_id = {p: i for i, p in enumerate(ali.PHONES)}
    ali.write_phone_table(root / "phones.txt")
    items = defaultdict(list)
    for part in PARTS:
        utts = sorted(u.id for u in plan.utterances if u.rendering.speaker.part == part)
        ali.write_alignments(
            root / f"{part}.txt",
            (
                (u, [phone_id[p] for p in ali.segments_to_frames(segments[u], len(audio[u]))])
                for u in utts
            ),
        )
        if part != "train":
            for u in utts:
                items[part] += ali.segments_to_items(u, u.split("-")[0], segments[u])
            ali.write_items(root.parent / "abx" / f"{part}.item", items[part])


def write_speech_commands(root: Path, plan: P.Plan, clips: dict[str, np.ndarray]) -> None:
    lists = {"dev": [], "test": []}
    for c in plan.keywords:
        write_flac(root / c.path.replace(".wav", ".flac"), clips[c.path])
        part = c.rendering.speaker.part
        if part in lists:
            lists[part].append(c.path)
    (root / "validation_list.txt").write_text("".join(p + "\n" for p in sorted(lists["dev"])))
    (root / "testing_list.txt").write_text("".join(p + "\n" for p in sorted(lists["test"])))
    for kind in P.NOISES:
        x = noise(kind, P.NOISE_SECONDS, P.rng_for("noise", kind))
        write_flac(root / "_background_noise_" / f"{kind}.flac", x)


def write_voxceleb(root: Path, plan: P.Plan) -> None:
    """VoxCeleb1 metadata over the LibriSpeech-layout audio; the wav tree is built at prep time."""
    ids = vox_ids(plan)
    vox_path = {}
    counter = defaultdict(int)
    for u in plan.utterances:
        vid = video_id(u.chapter)
        counter[vid] += 1
        vox_path[u.id] = f"{ids[u.rendering.speaker.id]}/{vid}/{counter[vid]:05d}.wav"
    root.mkdir(parents=True, exist_ok=True)
    (root / "utt_map.txt").write_text("".join(f"{vox_path[u]} {u}\n" for u in sorted(vox_path)))
    split_lines = []
    for u in plan.utterances:
        spk = u.rendering.speaker
        chapters = plan.chapters[spk.id]
        n = int(u.id.rsplit("-", 1)[1])
        split = 1 if u.chapter != chapters[-1] else (2 if n % 2 == 0 else 3)
        split_lines.append(f"{split} {vox_path[u.id]}\n")
    (root / "iden_split.txt").write_text("".join(sorted(split_lines, key=lambda x: x.split()[1])))
    rng = P.rng_for("trials")
    test_utts = [u for u in plan.utterances if u.rendering.speaker.part != "train"]
    by_spk = defaultdict(list)
    for u in test_utts:
        by_spk[u.rendering.speaker].append(u)
    trials, seen = [], set()
    for u in test_utts:
        spk = u.rendering.speaker
        same = [v for v in by_spk[spk] if v.id != u.id]
        others = [s for s in by_spk if s != spk]
        # the hard non-target: another pseudo-speaker made from the same base voice, if any
        sibling = [s for s in others if s.voice == spk.voice] or others
        picks = [(1, same[i]) for i in rng.choice(len(same), 2, replace=False)]
        for pool in (sibling, others):
            s = pool[int(rng.integers(len(pool)))]
            picks.append((0, by_spk[s][int(rng.integers(len(by_spk[s])))]))
        for label, v in picks:
            key = tuple(sorted((u.id, v.id)))
            if key not in seen:
                seen.add(key)
                trials.append(f"{label} {vox_path[u.id]} {vox_path[v.id]}\n")
    (root / "veri_test.txt").write_text("".join(trials))


def statistics(plan, audio, segments, clips) -> dict:
    stats: dict = {"parts": {}}
    for part in PARTS:
        utts = [u for u in plan.utterances if u.rendering.speaker.part == part]
        stats["parts"][part] = {
            "speakers": len({u.rendering.speaker.id for u in utts}),
            "utterances": len(utts),
            "minutes": sum(len(audio[u.id]) for u in utts) / P.SAMPLE_RATE / 60,
        }
    stats["minutes"] = sum(p["minutes"] for p in stats["parts"].values())
    stats["keyword_clips"] = len(clips)
    stats["keyword_minutes"] = len(clips) / 60
    stats["phones"] = sorted({s.phone for seg in segments.values() for s in seg} - {ali.SILENCE})
    stats["base_voices"] = sorted({s.voice for s in plan.speakers})
    return stats


def write_readme(path: Path, stats: dict) -> None:
    rows = "\n".join(
        f"| {part} | {p['speakers']} | {p['utterances']} | {p['minutes']:.1f} |"
        for part, p in stats["parts"].items()
    )
    path.write_text(f"""# scpc mini corpus

Synthetic English speech, generated by `local/make_mini_corpus.sh` (flite and festival voices,
Harvard sentences) and committed so that every recipe runs offline. Do not edit by hand:
regenerate, then commit. `MANIFEST.sha256` lists the checksum of every file.

| part | speakers | utterances | minutes |
|---|---|---|---|
{rows}

- {stats["minutes"]:.1f} minutes of sentences from {sum(p["speakers"] for p in stats["parts"].values())} pseudo-speakers
  made from {len(stats["base_voices"])} base voices ({", ".join(stats["base_voices"])}) by changing pitch, formants
  (resampling), tempo, channel tilt and level. Dev and test speakers are disjoint from the training
  speakers and from each other, but share base voices with training speakers.
- {len(stats["phones"])} distinct phones (CMUdict's 39 without stress) plus silence.
- {stats["keyword_clips"]} one-second keyword clips ({stats["keyword_minutes"]:.1f} minutes) of {len(P.COMMANDS) + len(P.OTHER_WORDS)} words.

Layout:
- `LibriSpeech/{{train,dev,test}}/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`, `*.trans.txt`,
  `SPEAKERS.TXT`, `CHAPTERS.TXT`.
- `alignments/<part>.txt`: one line per utterance, one phone id per 10 ms frame
  (frames = samples // 160, labelled at their centre); `alignments/phones.txt` maps ids.
- `abx/{{dev,test}}.item`: ZeroSpeech item files (phones with phone neighbours, at least 20 ms).
- `speech_commands/<word>/<hash>_nohash_<n>.flac`, `validation_list.txt`, `testing_list.txt`
  (the speaker hashes also fall in the right split under TensorFlow's hash rule),
  `_background_noise_/`. Prep expands this to the real `.wav` layout.
- `voxceleb1/iden_split.txt` (closed-set speaker identification over all speakers),
  `veri_test.txt` (verification trials over the dev and test speakers), `utt_map.txt`
  (VoxCeleb1 path to utterance id). Prep builds the `wav/<id>/<video>/<n>.wav` tree.
""")


def write_manifest(root: Path) -> None:
    lines = []
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256"):
        lines.append(
            f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(root).as_posix()}\n"
        )
    (root / "MANIFEST.sha256").write_text("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="output directory, e.g. corpus/mini")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    start = time.time()
    stats = generate(args.out, args.jobs)
    print(
        f"wrote {args.out}: {stats['minutes']:.1f} min of sentences, "
        f"{stats['keyword_clips']} keyword clips, {len(stats['phones'])} phones, "
        f"{stats['megabytes']:.1f} MB in {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
