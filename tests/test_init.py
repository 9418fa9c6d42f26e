"""scpc-init: baseline checkpoints (a model as initialised, a front-end's own features)."""

import torch
from conftest import ROOT

from scpc.cli import init
from scpc.frontend import frontend_from_config, load_frontend_config
from scpc.models.checkpoint import load_inference_checkpoint


def test_random_init_model_is_seeded_and_has_the_config_architecture(tmp_path):
    conf = str(ROOT / "conf" / "model.cpc.mini.yaml")
    feats = ["--feats-dir", str(ROOT / "conf" / "feats")]
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        init.main(["model", conf, str(tmp_path / f"{name}.ckpt"), "--seed", str(seed), *feats])
    a, b, c = (load_inference_checkpoint(tmp_path / f"{n}.ckpt") for n in "abc")
    assert a.output_size == 128 and a.provenance["random_init"] is True
    sa, sb, sc = (m.encoder.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_frontend_checkpoint_gives_the_features_themselves(tmp_path):
    path = ROOT / "conf" / "feats" / "mfcc-13.json"
    init.main(["frontend", str(path), str(tmp_path / "mfcc.ckpt")])
    model = load_inference_checkpoint(tmp_path / "mfcc.ckpt")
    wav, lens = torch.randn(1, 4000) * 0.1, torch.tensor([4000])
    want, _ = frontend_from_config(load_frontend_config(path))(wav, lens)
    torch.testing.assert_close(model(wav, lens).output, want)
