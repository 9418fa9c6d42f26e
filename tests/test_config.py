"""Model configs: overlays are checked, freezing keeps the experiment, diffs are shown."""

import pytest
import yaml
from conftest import ROOT, run_script

from scpc import config as cfg
from scpc.errors import ScpcError


def test_overlay_checks_keys_types_and_choices():
    c = cfg.merge(cfg.DEFAULTS, {"training": {"learning_rate": 1, "cpc_loss": {"offset": 2}}}, "x")
    assert c["training"]["learning_rate"] == 1.0 and c["training"]["cpc_loss"]["offset"] == 2
    assert c["training"]["batch_size"] == cfg.DEFAULTS["training"]["batch_size"]
    with pytest.raises(
        ScpcError, match=r"x: unknown config key conv\.norm \(did you mean conv\.norm_type\?\)"
    ):
        cfg.merge(cfg.DEFAULTS, {"conv": {"norm": "batch"}}, "x")
    with pytest.raises(
        ScpcError, match="conv.norm_type must be one of none, batch, channel, instance"
    ):
        cfg.merge(cfg.DEFAULTS, {"conv": {"norm_type": "layer"}}, "x")
    with pytest.raises(ScpcError, match="training.batch_size must be a int"):
        cfg.merge(cfg.DEFAULTS, {"training": {"batch_size": "four"}}, "x")
    with pytest.raises(ScpcError, match="training.shuffle must be true or false"):
        cfg.merge(cfg.DEFAULTS, {"training": {"shuffle": 1}}, "x")
    assert cfg.merge(cfg.DEFAULTS, {"train_part": 460}, "x")["train_part"] == "460"


def test_invalid_yaml_names_the_line(tmp_path):
    f = tmp_path / "model.x.yaml"
    f.write_text("name: x\ntraining: [\n")
    with pytest.raises(ScpcError, match=rf"{f}: line \d+ invalid YAML"):
        cfg.load(f)


def test_freeze_keeps_the_frozen_config_and_prints_the_diff(tmp_path):
    conf = tmp_path / "model.m.yaml"
    conf.write_text("feat_type: fbank-80\nlatent_type: ff\ntraining: {learning_rate: 0.001}\n")
    out = tmp_path / "exp" / "m" / "version_0" / "model.yaml"
    scpc_config = ROOT / ".venv" / "bin" / "scpc-config"
    run_script(scpc_config, "freeze", conf, ROOT / "conf" / "feats", out)
    frozen = cfg.load(out)
    assert frozen["name"] == "m" and frozen["frontend"]["bank"]["num_filts"] == 80
    assert frozen["training"]["learning_rate"] == 0.001
    before = out.read_text()
    conf.write_text("feat_type: fbank-80\nlatent_type: ff\ntraining: {learning_rate: 0.002}\n")
    proc = run_script(scpc_config, "freeze", conf, ROOT / "conf" / "feats", out)
    assert out.read_text() == before
    assert "-  learning_rate: 0.001" in proc.stderr and "+  learning_rate: 0.002" in proc.stderr
    get = run_script(scpc_config, "get", out, "training.learning_rate")
    assert get.stdout.strip() == "0.001"


def test_defaults_round_trip_through_yaml():
    assert cfg.merge(cfg.DEFAULTS, yaml.safe_load(cfg.dump(cfg.defaults())), "x") == cfg.DEFAULTS
