"""Corpus preparation: mini corpus, keyword spotting, speaker tasks, CPC split, bad audio."""

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, run_script

from scpc.audio import read_audio
from scpc.data import datadir as dd
from scpc.data.librispeech import cpc_split
from scpc.errors import ScpcError


def test_mini_prep_attaches_alignments_and_items(mini_data):
    for part in ("train", "dev", "test"):
        d = mini_data / part
        assert set(dd.read_table(d / "ali.txt")) == set(dd.DataDir(d).utts())
        assert (d / "abx.item").exists() == (part != "train")
    assert (
        run_script(ROOT / "local" / "mini_data_prep.sh", mini_data).stdout.count("already prepared")
        == 1
    )


def test_keyword_spotting_sets_have_the_twelve_superb_classes(mini_data):
    sc = mini_data.parent / "mini_speech_commands"
    classes = {
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
        "_unknown_",
        "_silence_",
    }
    speakers = {}
    for part in ("train", "valid", "test"):
        labels = dd.read_table(sc / part / "utt2label")
        assert set(labels.values()) == classes, part
        speakers[part] = set(dd.read_table(sc / part / "spk2utt")) - {"silence"}
        durations = [float(v) for v in dd.read_table(sc / part / "utt2dur").values()]
        assert min(durations) == pytest.approx(1.0, abs=1e-3) and max(durations) == pytest.approx(
            1.0, abs=1e-3
        )
    assert not speakers["train"] & (speakers["valid"] | speakers["test"])


def test_speaker_task_dirs(mini_data):
    vox = mini_data.parent / "mini_voxceleb1"
    sid = {p: set(dd.read_table(vox / f"sid_{p}" / "spk2utt")) for p in ("train", "dev", "test")}
    assert sid["train"] == sid["dev"] == sid["test"]  # closed set
    assert len(sid["train"]) == 20
    train = set(dd.read_table(vox / "asv_train" / "spk2utt"))
    test = set(dd.read_table(vox / "asv_test" / "spk2utt"))
    assert not train & test and len(test) == 8
    trials = (vox / "asv_test" / "trials").read_text().split("\n")
    assert {t.split()[2] for t in trials if t} == {"target", "nontarget"}


def test_cpc_split_accepts_prefixed_lists_and_complement(mini_data, tmp_path):
    utts = dd.DataDir(mini_data / "train").utts()
    (tmp_path / "train.txt").write_text("".join(f"lbi-{u}\n" for u in utts[:150]))
    (tmp_path / "val.txt").write_text("".join(f"lbi-{u}\n" for u in utts[150:]))
    cpc_split(
        mini_data / "train",
        tmp_path / "train.txt",
        tmp_path / "val.txt",
        tmp_path / "tr",
        tmp_path / "cv",
    )
    assert dd.DataDir(tmp_path / "tr").utts() == utts[:150]
    assert dd.DataDir(tmp_path / "cv").utts() == utts[150:]
    cpc_split(mini_data / "train", "-", tmp_path / "val.txt", tmp_path / "tr2", tmp_path / "cv2")
    assert dd.DataDir(tmp_path / "tr2").utts() == utts[:150]
    (tmp_path / "bad.txt").write_text("lbi-999-1-0000\n")
    with pytest.raises(ScpcError, match="1 utterances are not in"):
        cpc_split(
            mini_data / "train",
            tmp_path / "bad.txt",
            tmp_path / "val.txt",
            tmp_path / "x",
            tmp_path / "y",
        )


def test_librispeech_prep_names_a_missing_flac(mini_data, tmp_path):
    import shutil

    part = shutil.copytree(ROOT / "corpus" / "mini" / "LibriSpeech" / "dev", tmp_path / "dev")
    victim = sorted(part.rglob("*.flac"))[5]
    victim.unlink()
    proc = run_script(
        ROOT / "local" / "librispeech_data_prep.sh", part, tmp_path / "data", check=False
    )
    assert proc.returncode == 1 and f"{victim} is missing" in proc.stderr


def test_audio_errors_name_the_file_and_problem(tmp_path):
    good = np.zeros(1600, dtype=np.float32)
    sf.write(tmp_path / "8k.wav", good, 8000)
    sf.write(tmp_path / "stereo.wav", np.zeros((1600, 2)), 16000)
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(ScpcError, match=r"8k.wav: sample rate is 8000 Hz, expected 16000 Hz"):
        read_audio(str(tmp_path / "8k.wav"))
    assert len(read_audio(str(tmp_path / "8k.wav"), resample=True)) == 3200
    with pytest.raises(ScpcError, match="has 2 channels; choose one"):
        read_audio(str(tmp_path / "stereo.wav"))
    assert len(read_audio(str(tmp_path / "stereo.wav"), channel=1)) == 1600
    with pytest.raises(ScpcError, match="corrupt.flac: not a readable audio file"):
        read_audio(str(tmp_path / "corrupt.flac"))
    with pytest.raises(ScpcError, match="no such audio file"):
        read_audio(str(tmp_path / "absent.wav"))
    # a Kaldi pipe entry works like a file
    assert len(read_audio(f"cat {tmp_path / 'stereo.wav'} |", channel=0)) == 1600


@pytest.mark.slow
def test_run_sh_stage_0_prepares_mini_corpus_and_reports(tmp_path):
    proc = run_script(ROOT / "run.sh", "--stop-stage", "0")
    assert "Stage 0: data preparation (mini)" in proc.stdout
    assert "training set data/mini/train" in proc.stdout
    assert dd.validate(ROOT / "data" / "mini" / "train")


@pytest.mark.slow
def test_run_sh_prepares_librispeech_with_the_cpc_split(tmp_path):
    """Stage 0 on a LibriSpeech tree (mini parts under LibriSpeech names) and seeded CPC lists."""
    libri = tmp_path / "LibriSpeech"
    mini = ROOT / "corpus" / "mini" / "LibriSpeech"
    libri.mkdir()
    for name, part in (
        ("dev-clean", "dev"),
        ("dev-other", "dev"),
        ("test-clean", "test"),
        ("test-other", "test"),
        ("train-clean-100", "train"),
    ):
        (libri / name).symlink_to(mini / part)
    (libri / "SPEAKERS.TXT").symlink_to(mini / "SPEAKERS.TXT")
    utts = sorted(p.stem for p in (mini / "train").rglob("*.flac"))
    lists = tmp_path / "data" / "librispeech" / "lists"
    lists.mkdir(parents=True)
    for name, ids in (
        ("train_clean_100_train_subset.txt", utts[:180]),
        ("train_clean_100_test_subset.txt", utts[180:]),
    ):
        (lists / name).write_text("".join(f"lbi-{u}\n" for u in ids))
        (lists / f".{name}.complete").write_text("seeded by the test\n")  # nothing to download
    proc = run_script(
        ROOT / "run.sh",
        "--corpus",
        "librispeech",
        "--libri-dir",
        libri,
        "--datadir",
        tmp_path / "data",
        "--stop-stage",
        "0",
    )
    data = tmp_path / "data" / "librispeech"
    assert dd.DataDir(data / "train_100_cpc_train").utts() == utts[:180]
    assert dd.DataDir(data / "train_clean_100_cpc_val").utts() == utts[180:]
    for part in ("dev_clean", "dev_other", "test_clean", "test_other"):
        assert dd.validate(data / part)
    assert "train_100_cpc_train" in proc.stdout
