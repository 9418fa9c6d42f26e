"""Imported checkpoints work unchanged with the tools and recipes: scpc-import's command line,
scpc-info, scpc-a2r and local/zrc_run.sh --model <name> on the mini corpus."""

import json
import shutil

import pytest
import test_superb
import torch
from conftest import CORPUS, ROOT, run_script
from test_import_cpc_audio import config as cpc_config
from test_import_cpc_audio import original_model as cpc_model

pytestmark = pytest.mark.slow  # end-to-end runs: not in ./test.sh --quick

FIXTURES = ROOT / "tests" / "fixtures"
small_data, small_config = test_superb.small_data, test_superb.small_config  # a fixture


def sources(tmp_path):
    """One released-format checkpoint per format: (format, file, extra options)."""
    cpc = tmp_path / "cpc_small.pt"
    torch.save({"config": cpc_config(), "weights": cpc_model().state_dict()}, cpc)
    args = tmp_path / "feats.raw.args.txt"
    args.write_text("--raw\n")
    return [
        ("cpc-audio", cpc, []),
        ("scpc-ref", FIXTURES / "scpc_ref" / "cpc.small.best.ckpt", ["--feats-args", args]),
        ("tera", FIXTURES / "s3prl_tera" / "tera.ckpt", []),
        ("spiral", FIXTURES / "spiral" / "spiral.nemo", []),
    ]


def test_import_cli_lists_formats_and_fails_in_one_line(tmp_path):
    help_text = run_script(ROOT / ".venv/bin/scpc-import", "--help").stdout
    for fmt in (
        "scpc-ref",
        "cpc-audio",
        "mockingjay",
        "tera",
        "audio_albert",
        "spiral",
        "hubert",
        "wav2vec2",
    ):
        assert fmt in help_text
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = run_script(
        ROOT / ".venv/bin/scpc-import", "tera", bad, tmp_path / "exp" / "x", check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and str(bad) in proc.stderr
    assert not (tmp_path / "exp").exists()


def test_imported_models_run_through_a2r_info_and_zrc_run(tmp_path, mini_data):
    exp = tmp_path / "exp"
    wavs = tmp_path / "wavs"
    shutil.copytree(CORPUS / "LibriSpeech" / "dev", wavs)
    for fmt, src, extra in sources(tmp_path):
        name = f"imported.{fmt}"
        out = run_script(ROOT / ".venv/bin/scpc-import", fmt, src, exp / name, *extra).stdout
        ckpt = exp / name / "version_0" / "best.ckpt"
        assert out.strip() == str(ckpt) and (exp / name / "version_0" / "model.yaml").is_file()
        frontend = json.loads((exp / name / "version_0" / "frontend.json").read_text())
        assert frontend == torch.load(ckpt, weights_only=True)["frontend"]
        info = run_script(ROOT / ".venv/bin/scpc-info", ckpt).stdout
        assert "downsampling_factor" in info or "160" in info
        reps = tmp_path / "reps" / fmt
        a2r = [ROOT / ".venv/bin/scpc-a2r", "--device", "cpu", "--audio-suffix", ".flac"]
        run_script(*a2r, wavs, ckpt, reps)
        files = sorted(reps.rglob("*.pt"))
        assert len(files) == len(sorted(wavs.rglob("*.flac")))
        assert torch.load(files[0], weights_only=True).dim() == 2
        zrc = [ROOT / "local" / "zrc_run.sh", "--model", name, "--expdir", exp]
        zrc += ["--datadir", mini_data.parent, "--parts", "dev", "--baselines", ""]
        proc = run_script(*zrc)
        rows = [r.split() for r in proc.stdout.splitlines() if r.startswith(name)]
        assert rows and all(0 <= float(x) <= 100 for x in rows[0][2:]), proc.stdout


def test_imported_tera_runs_through_superb_run(tmp_path, mini_data, small_data):
    """A probe on every hidden state of an imported model (TERA: the input representation
    and each layer, weighted as s3prl's featurizer does)."""
    exp = tmp_path / "exp"
    run_script(
        ROOT / ".venv/bin/scpc-import", "tera", FIXTURES / "s3prl_tera" / "tera.ckpt", exp / "tera"
    )
    conf = small_config(tmp_path, small_data, "phone_linear", max_steps=2)
    opts = ["--task", "phone_linear", "--model", "tera", "--config", conf]
    proc = run_script(
        ROOT / "local" / "superb_run.sh", *opts, "--datadir", mini_data.parent, "--expdir", exp
    )
    assert proc.stdout.startswith("phone_linear tera: accuracy "), proc.stdout
    result = json.loads(
        next((exp / "tera" / "version_0" / "superb").rglob("results.json")).read_text()
    )
    assert len(result["layer_weights"]) == 3
