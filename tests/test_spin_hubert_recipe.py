"""Spin on a HuBERT-architecture upstream through the recipes, as conf/model.spin.hubert-mini
does it: run.sh makes the missing upstream (conf/model.hubert.mini.yaml, max_steps 0: its
initialisation by scpc-init), Spin continues it and logs PNMI, and its best.ckpt runs through
local/zrc_run.sh and local/superb_run.sh --task pr."""

import json

import pytest
import test_superb
import torch
import yaml
from conftest import ROOT, run_script

from scpc import config as cfg

small_data = test_superb.small_data  # a fixture


@pytest.mark.slow
def test_spin_hubert_mini_runs_through_run_zrc_and_superb(tmp_path, mini_data, small_data):
    exp = tmp_path / "exp"
    em = exp / "spin.hm" / "version_0"
    em.mkdir(parents=True)
    upstream = exp / "hubert.mini" / "version_0" / "best.ckpt"
    conf = yaml.safe_load((ROOT / "conf" / "model.spin.hubert-mini.yaml").read_text())
    conf["name"] = "spin.hm"
    conf["frontend"] = {"name": "raw"}
    conf["training"].update(max_epochs=1, max_steps=3, batch_size=4)
    conf["training"]["spin_loss"]["init_checkpoint"] = str(upstream)
    (em / "model.yaml").write_text(cfg.dump(cfg.merge(cfg.DEFAULTS, conf, "test")))
    args = ["--model", "spin.hm", "--datadir", mini_data.parent, "--expdir", exp]
    proc = run_script(ROOT / "run.sh", *args, "--stop-stage", "3", "--pca-dims", "")
    assert "continues" in proc.stdout and "model as initialised (scpc-init)" in proc.stdout
    assert upstream.is_file() and (em / "best.ckpt").is_file()
    assert " PNMI 0." in (em / "train.log").read_text()
    before = torch.load(upstream, weights_only=True)["state_dict"]
    after = torch.load(em / "best.ckpt", weights_only=True)["state_dict"]
    frozen = [k for k in before if ".layers." not in k and "encoder_layer_norm" not in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if ".layers.1." in k)

    zrc = [ROOT / "local" / "zrc_run.sh", "--model", "spin.hm", "--expdir", exp]
    zrc += ["--datadir", mini_data.parent, "--parts", "dev", "--baselines", ""]
    rows = [r.split() for r in run_script(*zrc).stdout.splitlines() if r.startswith("spin.hm")]
    assert rows and all(0 <= float(x) <= 100 for x in rows[0][2:])

    probe = test_superb.small_config(tmp_path, small_data, "pr", max_steps=2)
    opts = ["--task", "pr", "--model", "spin.hm", "--config", probe, "--expdir", exp]
    proc = run_script(ROOT / "local" / "superb_run.sh", *opts, "--datadir", mini_data.parent)
    assert proc.stdout.startswith("pr spin.hm: per "), proc.stdout
    result = json.loads(next((em / "superb").rglob("results.json")).read_text())
    assert len(result["layer_weights"]) == 3  # the first layer's input, then each layer's output
