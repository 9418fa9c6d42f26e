"""Continued training from an imported checkpoint (training.init_checkpoint): the run starts
from the imported encoder, architecture and weights, under scpc's objective."""

import copy

import pytest
import torch
import yaml
from conftest import ROOT, train_tiny
from test_import_cpc_audio import config as cpc_config
from test_import_cpc_audio import original_model as cpc_model
from test_train import TINY, make_raw_feats

from scpc import config as cfg
from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.train.loop import complete_saved_config
from scpc.train.model import PretrainModel

FIXTURES = ROOT / "tests" / "fixtures"


def same_weights(a, b):
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    flat_a = torch.cat([v.flatten().float() for v in sa.values()])
    flat_b = torch.cat([v.flatten().float() for v in sb.values()])
    return len(sa) == len(sb) and float((flat_a - flat_b).abs().max()) < 1e-5


def continued(ckpt, loss_type="cpc", **training):
    conf = copy.deepcopy(TINY)
    conf["training"].update(
        init_checkpoint=str(ckpt), loss_type=loss_type, max_epochs=1, **training
    )
    return conf


@pytest.mark.slow
def test_cpc_continues_an_imported_cpc_audio_model(tmp_path, mini_data):
    src = tmp_path / "cpc_small.pt"
    torch.save({"config": cpc_config(levels=1), "weights": cpc_model(levels=1).state_dict()}, src)
    ckpt = import_checkpoint("cpc-audio", src, tmp_path / "imported.ckpt")
    dirs = [
        make_raw_feats(mini_data / "dev", tmp_path / "feats" / p, n)
        for p, n in (("tr", 8), ("va", 4))
    ]
    # a learning rate of ~0: the best.ckpt written must be the imported model itself
    exp = train_tiny(tmp_path, continued(ckpt, learning_rate=1e-12), dirs)
    trained, imported = (load_inference_checkpoint(p) for p in (exp / "best.ckpt", ckpt))
    assert same_weights(trained, imported)
    wav = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(
            trained(wav, torch.tensor([8000, 5000])).output,
            imported(wav, torch.tensor([8000, 5000])).output,
        )


def test_tera_reconstruction_continues_an_imported_tera(tmp_path):
    ckpt = import_checkpoint("tera", FIXTURES / "s3prl_tera" / "tera.ckpt", tmp_path / "tera.ckpt")
    imported = load_inference_checkpoint(ckpt)
    conf = continued(ckpt, "reconstruction")
    conf["frontend"] = imported.frontend.config
    model = PretrainModel(cfg.merge(cfg.DEFAULTS, conf, "test"), imported.frontend.feat_size)
    assert model.encoder().to_json()["args"]["encoders"][1] == imported.encoder.to_json()
    feats = torch.randn(2, 50, imported.frontend.feat_size)
    out = model(feats, torch.tensor([50, 30]), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_front_end_of_the_checkpoint_must_be_the_configs(tmp_path):
    ckpt = import_checkpoint(
        "scpc-ref", FIXTURES / "scpc_ref" / "cpc.small.best.ckpt", tmp_path / "r.ckpt"
    )
    conf = cfg.merge(cfg.DEFAULTS, continued(ckpt), "test")  # raw, but the reference reads int16
    with pytest.raises(ScpcError, match="its front-end differs from this config's"):
        PretrainModel(conf, 1)


def test_a_state_saved_before_a_new_config_key_still_resumes():
    full = cfg.merge(cfg.DEFAULTS, copy.deepcopy(TINY), "test")
    old = copy.deepcopy(full)
    del old["training"]["init_checkpoint"]  # what an older scpc dumped
    state = complete_saved_config({"config": yaml.safe_dump(old, sort_keys=False)})
    assert state["config"] == cfg.dump(full)
