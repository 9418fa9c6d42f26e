"""utils/ data-dir tools with Kaldi semantics, run through their shell wrappers."""

import shutil

import pytest
from conftest import ROOT, run_script

from scpc.data import datadir as dd

UTILS = ROOT / "utils"


@pytest.fixture
def train(mini_data, tmp_path):
    """A private copy of the prepared mini training dir (tests may damage it)."""
    return shutil.copytree(mini_data / "train", tmp_path / "train")


def validate(d, *opts):
    return run_script(UTILS / "validate_data_dir.sh", *opts, d, check=False)


def test_prepared_dirs_validate(mini_data):
    for part in ("train", "dev", "test"):
        proc = validate(mini_data / part)
        assert proc.returncode == 0, proc.stderr
        assert "OK" in proc.stdout


def test_validate_rejects_unsorted_table_naming_file_and_line(train):
    lines = (train / "text").read_text().splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]
    (train / "text").write_text("".join(lines))
    proc = validate(train)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1
    assert f"{train}/text:5: not sorted" in proc.stderr


def test_validate_rejects_utterance_missing_from_a_table(train):
    lines = (train / "wav.scp").read_text().splitlines(keepends=True)
    missing = lines.pop(10).split()[0]
    (train / "wav.scp").write_text("".join(lines))
    proc = validate(train)
    assert proc.returncode != 0
    assert f"{train}/wav.scp: 1 utterances missing (first: {missing})" in proc.stderr


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "spk2utt").write_text("121 x\n"), "spk2utt: does not match utt2spk"),
        (
            lambda d: (d / "spk2gender").write_text(
                (d / "spk2gender").read_text().replace(" m", " x", 1)
            ),
            "is not m or f",
        ),
        (
            lambda d: (d / "utt2dur").write_text((d / "utt2dur").read_text().replace(" ", " -", 1)),
            "is not positive",
        ),
        (
            lambda d: (d / "ali.txt").write_text(
                "".join(
                    line.rsplit(" ", 40)[0] + "\n"
                    for line in (d / "ali.txt").read_text().splitlines()
                )
            ),
            "frames do not fit",
        ),
        (
            lambda d: (d / "wav.scp").write_text(
                (d / "wav.scp").read_text().replace(".flac", ".missing.flac", 1)
            ),
            "does not exist",
        ),
        (lambda d: (d / "text").write_text("\n" + (d / "text").read_text()), "text:1: empty line"),
    ],
)
def test_validate_rejects_inconsistent_tables(train, damage, message):
    damage(train)
    proc = validate(train)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_validate_requires_utterance_ids_led_by_speaker_ids(train):
    utt2spk = dd.read_table(train / "utt2spk")
    first = next(iter(utt2spk))
    utt2spk[first] = "zzz"
    dd.write_table(train / "utt2spk", utt2spk)
    dd.write_table(train / "spk2utt", dd.utt2spk_to_spk2utt(utt2spk))
    assert "not sorted by speaker" in validate(train).stderr
    assert "no-spk-sort" not in validate(train, "--no-spk-sort").stderr


def test_fix_data_dir_sorts_and_keeps_utterances_present_everywhere(train):
    text = (train / "text").read_text().splitlines(keepends=True)
    dropped = text.pop(7).split()[0]
    (train / "text").write_text("".join(reversed(text)))
    proc = run_script(UTILS / "fix_data_dir.sh", train)
    assert "kept 215 of 216" in proc.stdout
    assert validate(train).returncode == 0
    assert dropped not in dd.read_table(train / "utt2spk")
    assert dropped not in dd.read_table(train / "ali.txt")
    assert (train / ".backup" / "text").exists()


@pytest.mark.slow
def test_subset_modes(mini_data, tmp_path):
    src = mini_data / "train"
    durations = {u: float(d) for u, d in dd.read_table(src / "utt2dur").items()}
    utts = list(durations)

    dest = tmp_path / "first"
    run_script(UTILS / "subset_data_dir.sh", "--first", src, 10, dest)
    assert dd.DataDir(dest).utts() == utts[:10] and validate(dest).returncode == 0

    dest = tmp_path / "shortest"
    run_script(UTILS / "subset_data_dir.sh", "--shortest", src, 5, dest)
    assert set(dd.DataDir(dest).utts()) == set(sorted(utts, key=durations.get)[:5])

    dest = tmp_path / "list"
    (tmp_path / "ids").write_text(f"{utts[3]}\n{utts[50]}\n")
    run_script(UTILS / "subset_data_dir.sh", "--utt-list", tmp_path / "ids", src, dest)
    assert dd.DataDir(dest).utts() == [utts[3], utts[50]]
    assert set(dd.read_table(dest / "ali.txt")) == {utts[3], utts[50]}

    dest = tmp_path / "spk"
    (tmp_path / "spks").write_text("121\n2086\n")
    run_script(UTILS / "subset_data_dir.sh", "--spk-list", tmp_path / "spks", src, dest)
    assert set(dd.read_table(dest / "spk2utt")) == {"121", "2086"}
    assert set(dd.read_table(dest / "spk2gender")) == {"121", "2086"}

    dest = tmp_path / "speakers"
    run_script(UTILS / "subset_data_dir.sh", "--speakers", src, 54, dest)
    spk2utt = dd.read_table(dest / "spk2utt")
    full = dd.read_table(src / "spk2utt")
    assert len(spk2utt) == 3 and all(spk2utt[s] == full[s] for s in spk2utt)

    dest = tmp_path / "perspk"
    run_script(UTILS / "subset_data_dir.sh", "--per-spk", src, 2, dest)
    assert len(dd.DataDir(dest).utts()) == 24


@pytest.mark.slow
def test_split_by_speaker_keeps_speakers_whole_and_combine_restores(mini_data, tmp_path):
    src = shutil.copytree(mini_data / "train", tmp_path / "train")
    run_script(UTILS / "split_data.sh", src, 5)
    parts = [src / "split5" / str(i) for i in range(1, 6)]
    seen = set()
    for p in parts:
        assert validate(p).returncode == 0
        speakers = set(dd.read_table(p / "spk2utt"))
        assert not speakers & seen
        seen |= speakers
    sizes = [len(dd.DataDir(p).utts()) for p in parts]
    assert sum(sizes) == 216 and max(sizes) - min(sizes) <= 18
    run_script(UTILS / "combine_data.sh", tmp_path / "back", *parts)
    for name in ("utt2spk", "text", "wav.scp", "utt2dur", "spk2utt", "spk2gender", "ali.txt"):
        assert (tmp_path / "back" / name).read_text() == (src / name).read_text(), name


def test_split_per_utterance_and_too_many_parts(mini_data, tmp_path):
    src = shutil.copytree(mini_data / "dev", tmp_path / "dev")
    run_script(UTILS / "split_data.sh", "--per-utt", src, 7)
    sizes = [len(dd.DataDir(src / "split7utt" / str(i)).utts()) for i in range(1, 8)]
    assert sum(sizes) == 72 and max(sizes) - min(sizes) <= 1
    proc = run_script(UTILS / "split_data.sh", src, 5, check=False)
    assert proc.returncode != 0 and "cannot split 4 speakers into 5 parts" in proc.stderr


def test_utt2spk_and_spk2utt_filters_are_inverse(mini_data):
    utt2spk = (mini_data / "train" / "utt2spk").read_text()
    spk2utt = run_script(
        "bash", "-c", f"{UTILS}/utt2spk_to_spk2utt.sh < {mini_data}/train/utt2spk"
    ).stdout
    assert spk2utt == (mini_data / "train" / "spk2utt").read_text()
    back = run_script(
        "bash",
        "-c",
        f"{UTILS}/utt2spk_to_spk2utt.sh < {mini_data}/train/utt2spk | {UTILS}/spk2utt_to_utt2spk.sh",
    ).stdout
    assert back == utt2spk


def test_get_utt2dur_matches_prepared_durations(mini_data, tmp_path):
    d = shutil.copytree(mini_data / "dev", tmp_path / "dev")
    (d / "utt2dur").unlink()
    run_script(UTILS / "data" / "get_utt2dur.sh", d)
    assert (d / "utt2dur").read_text() == (mini_data / "dev" / "utt2dur").read_text()
