"""The committed mini corpus: integrity, alignments, item files, splits, statistics."""

import os
import shutil
import sys
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf
from conftest import CORPUS, ROOT

from scpc.data.alignment import FRAME_SHIFT, PHONES, read_alignments, read_items, read_phone_table
from scpc.data.mini import verify_manifest

PARTS = ("train", "dev", "test")


def flacs(part):
    return {p.stem: p for p in (CORPUS / "LibriSpeech" / part).glob("*/*/*.flac")}


def test_manifest_covers_and_matches_every_committed_file():
    listed = verify_manifest(CORPUS)
    on_disk = [p for p in CORPUS.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256"]
    assert listed == len(on_disk)


def test_alignment_frames_match_audio_length_for_every_utterance():
    assert read_phone_table(CORPUS / "alignments" / "phones.txt") == {
        p: i for i, p in enumerate(PHONES)
    }
    for part in PARTS:
        audio = flacs(part)
        ali = dict(read_alignments(CORPUS / "alignments" / f"{part}.txt"))
        assert set(ali) == set(audio), part
        for utt, labels in ali.items():
            samples = sf.info(audio[utt]).frames
            assert abs(len(labels) * FRAME_SHIFT - samples) <= 400, utt
            assert max(labels) < len(PHONES)


def test_alignments_put_silence_where_the_audio_is_quiet():
    audio = flacs("dev")
    ali = dict(read_alignments(CORPUS / "alignments" / "dev.txt"))
    energy = defaultdict(list)
    for utt in sorted(ali)[:20]:
        x, _ = sf.read(audio[utt])
        for i, label in enumerate(ali[utt]):
            frame = x[i * FRAME_SHIFT : (i + 1) * FRAME_SHIFT]
            energy[label == 0].append(np.sqrt(np.mean(frame**2)))
    assert np.median(energy[True]) < 0.05 * np.median(energy[False])


def test_item_files_name_existing_utterances_with_times_inside_them():
    speaker_of = {}
    for part in ("dev", "test"):
        audio = flacs(part)
        items = read_items(CORPUS / "abx" / f"{part}.item")
        assert len(items) > 1000
        for it in items:
            assert it.file in audio
            speaker_of[it.file] = it.speaker
            assert 0 <= it.onset < it.offset <= sf.info(audio[it.file]).duration + 1e-4
            assert it.phone in PHONES and it.prev in PHONES and it.next in PHONES
        assert all(u.split("-")[0] == s for u, s in speaker_of.items())
        # every speaker of the part appears, so across-speaker ABX has pairs
        assert {u.split("-")[0] for u in audio} == {it.speaker for it in items}


def test_dev_and_test_speakers_are_disjoint_from_train_and_each_other():
    speakers = {part: {u.split("-")[0] for u in flacs(part)} for part in PARTS}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert len(speakers["dev"]) >= 2 and len(speakers["test"]) >= 2


def test_dev_and_test_text_is_unseen_in_training():
    def sentences(part):
        lines = []
        for t in (CORPUS / "LibriSpeech" / part).glob("*/*/*.trans.txt"):
            lines += [line.split(" ", 1)[1] for line in t.read_text().splitlines()]
        return set(lines)

    assert not sentences("train") & (sentences("dev") | sentences("test"))


def test_corpus_meets_the_size_and_variety_targets():
    minutes = sum(sf.info(p).duration for part in PARTS for p in flacs(part).values()) / 60
    speakers_txt = (CORPUS / "LibriSpeech" / "SPEAKERS.TXT").read_text().splitlines()
    rows = [line.split("|") for line in speakers_txt if not line.startswith(";")]
    voices = {r[4].split()[0] for r in rows}
    megabytes = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file()) / 1e6
    words = [
        d
        for d in (CORPUS / "speech_commands").iterdir()
        if d.is_dir() and not d.name.startswith("_")
    ]
    assert minutes >= 20
    assert len(rows) >= 12 and len(voices) >= 4
    assert {r[1].strip() for r in rows} == {"M", "F"}
    assert megabytes <= 25
    assert len(words) >= 10


def test_speech_commands_speaker_hashes_fall_in_their_split_under_tensorflow_rule():
    sys.path.insert(0, str(ROOT / "local"))
    from mini_corpus.plan import speech_commands_set

    sc = CORPUS / "speech_commands"
    expected = {p: "validation" for p in (sc / "validation_list.txt").read_text().split()}
    expected.update({p: "testing" for p in (sc / "testing_list.txt").read_text().split()})
    for clip in sc.glob("*/*.flac"):
        if clip.parent.name.startswith("_"):
            continue
        rel = f"{clip.parent.name}/{clip.stem}.wav"
        assert speech_commands_set(clip.stem.split("_nohash_")[0]) == expected.get(rel, "training")


def test_verification_trials_use_only_held_out_speakers_and_both_labels():
    vox = CORPUS / "voxceleb1"
    rel_to_utt = dict(line.split() for line in (vox / "utt_map.txt").read_text().splitlines())
    train = {u.split("-")[0] for u in flacs("train")}
    labels = set()
    for line in (vox / "veri_test.txt").read_text().splitlines():
        label, a, b = line.split()
        labels.add(label)
        spk_a, spk_b = rel_to_utt[a].split("-")[0], rel_to_utt[b].split("-")[0]
        assert spk_a not in train and spk_b not in train
        assert (label == "1") == (spk_a == spk_b)
    assert labels == {"0", "1"}


tts_missing = shutil.which("flite") is None or shutil.which("festival") is None


@pytest.mark.skipif(
    tts_missing and not os.environ.get("SCPC_REQUIRE_TTS"), reason="flite/festival not installed"
)
@pytest.mark.slow
def test_regenerating_utterances_reproduces_the_committed_audio_and_alignments():
    sys.path.insert(0, str(ROOT / "local"))
    from mini_corpus import plan as P
    from mini_corpus.generate import render_keywords, render_utterances

    from scpc.data.alignment import segments_to_frames

    plan = P.make_plan(P.read_sentences(ROOT / "local" / "mini_corpus" / "harvard_sentences.txt"))
    # one utterance per base voice (flite and festival), plus two keyword clips
    chosen = list({u.rendering.speaker.voice: u for u in plan.utterances}.values())
    ali = {}
    for part in PARTS:
        ali.update(read_alignments(CORPUS / "alignments" / f"{part}.txt"))
    phone_id = {p: i for i, p in enumerate(PHONES)}
    for utt, (x, segments) in zip(chosen, render_utterances(chosen)):
        part = utt.rendering.speaker.part
        committed, _ = sf.read(flacs(part)[utt.id], dtype="int16")
        np.testing.assert_array_equal(x, committed)
        assert [phone_id[p] for p in segments_to_frames(segments, len(x))] == ali[utt.id]
    clips = plan.keywords[:2]
    for clip, x in zip(clips, render_keywords(clips)):
        committed, _ = sf.read(
            CORPUS / "speech_commands" / clip.path.replace(".wav", ".flac"), dtype="int16"
        )
        np.testing.assert_array_equal(x, committed)
