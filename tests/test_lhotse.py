"""scpc-prep to-lhotse / from-lhotse with the real lhotse package: the mini corpus converted to
lhotse manifests and back equals the original; segments and pipes survive; cuts carry
features both ways; bad manifests are one line."""

from __future__ import annotations

import filecmp
import sys

import lhotse
import numpy as np
import pytest
import torch
from conftest import ROOT, run_script

from scpc.cli import prep
from scpc.data.alignment import read_alignments
from scpc.data.datadir import copy_filtered, read_table
from scpc.data.featdir import compute_feat_dir
from scpc.errors import ScpcError
from scpc.frontend import load_frontend_config
from scpc.kaldi_tables import read_scp

MANIFESTS = ("recordings.jsonl.gz", "supervisions.jsonl.gz")


@pytest.fixture(autouse=True)
def no_torchaudio_stand_in(monkeypatch):
    """tests/original_code.py leaves a torchaudio stand-in in sys.modules for s3prl; lhotse's
    audio backends probe for torchaudio and fail on it. Hide it while lhotse runs."""
    for name in [k for k in sys.modules if k.split(".")[0] == "torchaudio"]:
        monkeypatch.delitem(sys.modules, name)


def round_trip(src, tmp, *to_opts, from_opts=()):
    out, back = tmp / "lhotse", tmp / "back"
    assert prep.main(["to-lhotse", str(src), str(out), *map(str, to_opts)]) == 0
    assert prep.main(["from-lhotse", *(str(out / m) for m in MANIFESTS), str(back),
                      *map(str, from_opts)]) == 0  # fmt: skip
    return out, back


@pytest.mark.parametrize("part", ["train", "dev", "test"])
@pytest.mark.slow
def test_the_mini_corpus_to_lhotse_and_back_equals_the_original(mini_data, tmp_path, part):
    src = mini_data / part
    out, back = round_trip(src, tmp_path)
    for f in sorted(p.name for p in src.iterdir()):
        assert filecmp.cmp(src / f, back / f, shallow=False), f
    # from-lhotse adds the sample counts where the original had none; they are the audio's
    extra = {p.name for p in back.iterdir()} - {p.name for p in src.iterdir()}
    assert extra <= {"utt2num_samples"}
    proc = run_script(ROOT / "utils" / "validate_data_dir.sh", back)
    assert proc.stdout.strip().endswith(": OK")
    # what lhotse itself reads
    cuts = lhotse.CutSet.from_file(out / "cuts.jsonl.gz").to_eager()
    sups = lhotse.SupervisionSet.from_file(out / "supervisions.jsonl.gz").to_eager()
    assert len(cuts) == len(sups) == len(read_table(src / "utt2spk"))
    cut = next(iter(cuts))
    wav = cut.load_audio()
    assert wav.shape == (1, cut.num_samples) and cut.supervisions[0].id == cut.id
    alis = dict(read_alignments(src / "ali.txt"))
    phones = cut.supervisions[0].alignment["phone"]
    assert round(sum(p.duration for p in phones) / 0.01) == len(alis[cut.id])
    assert (
        phones[0].symbol == "SIL"
        and cut.supervisions[0].speaker == read_table(src / "utt2spk")[cut.id]
    )


def test_segments_and_pipes_survive_the_round_trip(mini_data, tmp_path):
    """Two recordings: a FLAC file cut into two segments, and a pipe (Kaldi's "cmd |")."""
    dev = read_table(mini_data / "dev" / "wav.scp")
    (a, fa), (b, fb) = list(dev.items())[:2]
    d = tmp_path / "seg"
    d.mkdir()
    (d / "wav.scp").write_text(f"recA {fa}\nrecB cat {fb} |\n")
    (d / "segments").write_text(
        "recA-1 recA 0.0000 1.0000\nrecA-2 recA 1.0000 2.0000\nrecB-1 recB 0.5000 1.5000\n"
    )
    (d / "utt2spk").write_text("recA-1 s1\nrecA-2 s1\nrecB-1 s2\n")
    (d / "spk2utt").write_text("s1 recA-1 recA-2\ns2 recB-1\n")
    (d / "text").write_text("recA-1 ONE\nrecA-2 TWO\nrecB-1 THREE\n")
    out, back = round_trip(d, tmp_path)
    for f in ("wav.scp", "segments", "utt2spk", "spk2utt", "text"):
        assert (back / f).read_text() == (d / f).read_text(), f
    assert not (back / "utt2num_samples").exists()
    recs = lhotse.RecordingSet.from_file(out / "recordings.jsonl.gz").to_eager()
    assert (
        recs["recB"].sources[0].type == "command" and recs["recB"].sources[0].source == f"cat {fb}"
    )
    cuts = lhotse.CutSet.from_file(out / "cuts.jsonl.gz").to_eager()
    assert [c.id for c in cuts] == ["recA-1", "recA-2", "recB-1"]
    assert cuts["recB-1"].load_audio().shape == (1, 16000)


def test_cuts_carry_features_both_ways(mini_data, tmp_path):
    small = tmp_path / "small"
    copy_filtered(mini_data / "dev", small, list(read_table(mini_data / "dev" / "utt2spk"))[:4])
    feats = tmp_path / "fbank41"
    compute_feat_dir(small, feats, load_frontend_config(ROOT / "conf" / "feats" / "fbank-41.json"))
    out, back = round_trip(small, tmp_path, "--feats", feats, from_opts=())
    cuts = lhotse.CutSet.from_file(out / "cuts.jsonl.gz").to_eager()
    for cut in cuts:
        want = torch.load(feats / "feat" / f"{cut.id}.pt").numpy()
        assert cut.has_features and cut.features.frame_shift == 0.01
        assert np.array_equal(cut.features.load(), want)
    # from-lhotse --cuts: the cuts' features as the data dir's Kaldi feats.scp
    again = tmp_path / "again"
    assert prep.main(["from-lhotse", *(str(out / m) for m in MANIFESTS), str(again),
                      "--cuts", str(out / "cuts.jsonl.gz")]) == 0  # fmt: skip
    table = read_scp(again / "feats.scp")
    assert sorted(table) == sorted(c.id for c in cuts)
    for cut in cuts:
        assert np.array_equal(table[cut.id].read(), cut.load_features())
    assert (again / "frame_shift").read_text() == "0.01\n"
    # and a data dir's feats.scp becomes the cuts' features by default
    relhotse = tmp_path / "relhotse"
    assert prep.main(["to-lhotse", str(again), str(relhotse)]) == 0
    for cut in lhotse.CutSet.from_file(relhotse / "cuts.jsonl.gz").to_eager():
        assert np.array_equal(cut.features.load(), table[cut.id].read())


def test_bad_manifests_are_one_clear_error(mini_data, tmp_path):
    with pytest.raises(ScpcError, match=r"nothing.jsonl.gz: no such file"):
        prep.main(
            [
                "from-lhotse",
                str(tmp_path / "nothing.jsonl.gz"),
                str(tmp_path / "s"),
                str(tmp_path / "o"),
            ]
        )
    stereo = lhotse.Recording(
        id="r", sources=[lhotse.AudioSource(type="file", channels=[0, 1], source="x.wav")],
        sampling_rate=16000, num_samples=16000, duration=1.0,
    )  # fmt: skip
    lhotse.RecordingSet.from_recordings([stereo]).to_file(tmp_path / "r.jsonl.gz")
    sup = lhotse.SupervisionSegment(id="r", recording_id="r", start=0, duration=1.0, speaker="s")
    lhotse.SupervisionSet.from_segments([sup]).to_file(tmp_path / "s.jsonl.gz")
    with pytest.raises(ScpcError, match="recording r: 2 channels; pick one first"):
        prep.main(
            [
                "from-lhotse",
                str(tmp_path / "r.jsonl.gz"),
                str(tmp_path / "s.jsonl.gz"),
                str(tmp_path / "o"),
            ]
        )
