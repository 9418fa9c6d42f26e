"""steps/make_feats.sh --import-scp: existing Kaldi features (a feats.scp) into a feature dir
under a front-end of kind "kaldi", which trains a model of that front-end and is refused by a
model of another."""

from __future__ import annotations

import json

import kaldiio
import pytest
import torch
from conftest import ROOT, run_script

from scpc.config import DEFAULTS, merge
from scpc.data.datadir import copy_filtered, read_table
from scpc.data.featdir import compute_feat_dir, read_feat_dir_frontend
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config, load_frontend_config
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.train.loop import Trainer

FBANK41 = ROOT / "conf" / "feats" / "fbank-41.json"
KALDI41 = {"name": "kaldi", "num_features": 41, "frame_shift_ms": 10.0}


@pytest.fixture(scope="module")
def parts(mini_data, tmp_path_factory):
    """Eight utterances each of dev and test, their fbank-41 feature dirs, and the same
    features as a Kaldi table (one feats.scp over both parts, as Kaldi's make_fbank.sh)."""
    root = tmp_path_factory.mktemp("import")
    scp, ark = root / "kaldi" / "feats.scp", root / "kaldi" / "raw_fbank.ark"
    scp.parent.mkdir()
    dirs = {}
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for part in ("dev", "test"):
            utts = list(read_table(mini_data / part / "utt2spk"))[:8]
            copy_filtered(mini_data / part, root / "data" / part, utts)
            compute_feat_dir(
                root / "data" / part, root / "fbank41" / part, load_frontend_config(FBANK41)
            )
            for u in utts:
                writer(u, torch.load(root / "fbank41" / part / "feat" / f"{u}.pt").numpy())
            dirs[part] = root / "fbank41" / part
    return root, scp, dirs


@pytest.mark.slow
def test_imported_features_equal_the_table_and_record_a_kaldi_frontend(parts, tmp_path):
    root, scp, computed = parts
    out = tmp_path / "imported"
    made = run_script(
        ROOT / "steps" / "make_feats.sh", "--import-scp", scp, root / "data" / "dev", out
    )
    assert "8 utterances imported" in made.stdout
    assert read_feat_dir_frontend(out) == KALDI41
    for name in ("feat", "ali"):  # the alignments at the features' 10 ms, as computed ones
        files = sorted(p.name for p in (computed["dev"] / name).iterdir())
        assert sorted(p.name for p in (out / name).iterdir()) == files
        for f in files:
            assert torch.equal(torch.load(out / name / f), torch.load(computed["dev"] / name / f))
    assert (out / "ext" / "utt2spk").read_text() == (root / "data" / "dev" / "utt2spk").read_text()
    again = run_script(
        ROOT / "steps" / "make_feats.sh", "--import-scp", scp, root / "data" / "dev", out
    )
    assert "0 utterances imported" in again.stdout and "8 already there" in again.stdout
    # pydrobert's reader takes the imported dir as it takes computed ones
    info = run_script(".venv/bin/get-torch-spect-data-dir-info", out, tmp_path / "info.txt")
    assert info.returncode == 0 and "num_utterances 8" in (tmp_path / "info.txt").read_text()


def test_an_import_into_a_computed_dir_or_with_missing_utterances_is_refused(parts, tmp_path):
    root, scp, computed = parts
    bad = run_script(ROOT / "steps" / "make_feats.sh", "--import-scp", scp, root / "data" / "dev",
                     computed["test"], check=False)  # fmt: skip
    assert bad.returncode != 0 and "holds features of another front-end" in bad.stderr
    part = tmp_path / "part.scp"
    part.write_text("".join(scp.read_text().splitlines(keepends=True)[1:]))
    short = run_script(ROOT / "steps" / "make_feats.sh", "--import-scp", part, root / "data" / "dev",
                       tmp_path / "x", check=False)  # fmt: skip
    assert short.returncode != 0 and f"{part}: no features of 1 of the 8 utterances" in short.stderr


def test_a_kaldi_frontend_describes_but_does_not_compute(parts):
    fe = frontend_from_config(KALDI41)
    assert (fe.feat_size, fe.frame_shift) == (41, 160)
    with pytest.raises(ScpcError, match="imported from a Kaldi table .* cannot be computed"):
        fe(torch.zeros(1, 1600), torch.tensor([1600]))
    with pytest.raises(ScpcError, match="'num_features' of the 'kaldi' front-end"):
        frontend_from_config({"name": "kaldi", "frame_shift_ms": 10})


@pytest.mark.slow
def test_a_model_trains_on_imported_features_and_one_of_another_frontend_refuses_them(
    parts, tmp_path
):
    root, scp, _ = parts
    dirs = []
    for part in ("dev", "test"):
        dirs.append(tmp_path / part)
        run_script(
            ROOT / "steps" / "make_feats.sh", "--import-scp", scp, root / "data" / part, dirs[-1]
        )
    model = {
        "name": "k",
        "latent_type": "ff",
        "context_type": "recur",
        "ff": {"output_size": 16},
        "recur": {"output_size": 16, "num_layers": 1, "recurrent_type": "gru"},
        "training": {"batch_size": 4, "max_epochs": 1, "chunking": {"policy": "none"}},
    }
    with pytest.raises(ScpcError, match="frontend.json does not match the model's front-end"):
        Trainer(merge(DEFAULTS, {**model, "frontend": load_frontend_config(FBANK41)}, "t"),
                *dirs, tmp_path / "refused")  # fmt: skip
    trainer = Trainer(merge(DEFAULTS, {**model, "frontend": KALDI41}, "t"), *dirs, tmp_path / "exp")
    trainer.fit()
    ckpt = load_inference_checkpoint(tmp_path / "exp" / "best.ckpt")
    assert (
        json.loads(json.dumps(ckpt.frontend.config)) == KALDI41 and ckpt.downsampling_factor == 160
    )
