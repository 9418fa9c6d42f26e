"""scpc-import spin: Spin's released Lightning checkpoints (vectominist/spin SpinModel:
``state_dict`` with the upstream under ``encoder.model.``, its head and codebook beside, Spin's
config as ``hyper_parameters``), with the upstream built by the original model code (s3prl
0.4.18's fairseq HuBERT and WavLM, as Spin builds it) and pre-training modules removed as
Spin removes them. Spin's hidden states are the extractor's features, then every layer's
output: scpc's are s3prl's (the first layer's input first), so the layer outputs are
compared."""

import pytest
import torch
from original_code import fairseq_differences, run_padded, s3prl_module

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint

LENGTHS = [8000, 6321, 2500]
CONV = "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2"
SMALL = {
    "encoder_layers": 2,
    "encoder_embed_dim": 128,
    "encoder_ffn_embed_dim": 64,
    "encoder_attention_heads": 2,
    "conv_feature_layers": CONV,
    "conv_pos": 16,
    "conv_pos_groups": 4,
}
TOLERANCE = 1e-4


def spin_upstream(kind):
    torch.manual_seed(0)
    if kind == "HuBERT":
        hubert = s3prl_module("upstream.hubert.hubert_model")
        cfg = hubert.HubertConfig(label_rate=50.0, **SMALL)
        task = hubert.HubertPretrainingConfig(label_rate=50.0)
        model = hubert.HubertModel(cfg, task, [["a", "b"]])
        model.remove_pretraining_modules()
    else:
        wavlm = s3prl_module("upstream.wavlm.WavLM")
        cfg = {**SMALL, "relative_position_embedding": True, "gru_rel_pos": True}
        model = wavlm.WavLM(wavlm.WavLMConfig({**cfg, "num_buckets": 320, "max_distance": 800}))
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "grep" in name or "relative_attention_bias" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model


def lightning_checkpoint(path, model, kind, codes=64):
    """What Lightning's ModelCheckpoint saves for Spin's SpinModel."""
    state = {f"encoder.model.{k}": v for k, v in model.state_dict().items()}
    state["pred_head.net.0.weight"] = torch.randn(256, 128)
    state["loss_module.codebook.weight"] = torch.randn(codes, 256)
    config = {
        "model": {
            "encoder": {"type": kind, "use_layer": 12, "normalize": False, "feat_select": "x"},
            "pred_head": {"type": "DNN", "hid_dims": [256]},
            "loss": {"type": "SwavVQDisentangle", "num_vars": codes, "sinkhorn_iters": 3},
        },
        "optim": {"optimizer": {"name": "Adam", "args": {"lr": 1e-4}}},
    }
    torch.save(
        {
            "epoch": 3,
            "global_step": 5000,
            "pytorch-lightning_version": "1.9.4",
            "state_dict": state,
            "hyper_parameters": config,
            "optimizer_states": [],
            "lr_schedulers": [],
        },
        path,
    )


@pytest.mark.parametrize("kind", ["HuBERT", "WavLM"])
def test_spin_checkpoint_imports_with_every_layer_output_equal(tmp_path, kind):
    model = spin_upstream(kind)
    src = tmp_path / f"spin_{kind.lower()}_64.ckpt"
    lightning_checkpoint(src, model, kind)
    ckpt = import_checkpoint("spin", src, tmp_path / "exp" / "spin")
    ours = load_inference_checkpoint(ckpt)
    assert ours.frontend.config == {"name": "raw"}
    assert "after Spin (64 codes" in read_checkpoint(ckpt)["provenance"]["system_description"]
    torch.manual_seed(1)
    wavs = [torch.randn(n) * 0.1 for n in LENGTHS]
    out = run_padded(ours, wavs)
    worst = max(fairseq_differences(out, model, wavs)[1:])  # the layers' outputs
    print(f"spin {kind} import max abs difference: {worst:.1e}")
    assert worst <= TOLERANCE
    assert ours.encoder.downsampling_factor == 320


@pytest.mark.parametrize(
    "payload,message",
    [
        ({"model": {}}, "no Lightning 'state_dict'"),
        ({"state_dict": {"x": torch.zeros(1)}}, "no weights under 'encoder.model.'"),
        (
            {"state_dict": {}, "hyper_parameters": {"model": {"encoder": {"type": "Data2Vec"}}}},
            "encoder type 'Data2Vec' is not HuBERT or WavLM",
        ),
        (
            {"state_dict": {}, "hyper_parameters": {"model": {"encoder": {"feat_select": "att"}}}},
            "feat_select='att' is not supported",
        ),
    ],
)
def test_foreign_input_is_one_line_and_writes_nothing(tmp_path, payload, message):
    src = tmp_path / "bad.ckpt"
    torch.save(payload, src)
    with pytest.raises(ScpcError, match=message):
        import_checkpoint("spin", src, tmp_path / "exp" / "bad")
    assert not (tmp_path / "exp").exists()


def test_a_non_standard_extractor_is_refused(tmp_path):
    model = spin_upstream("HuBERT")
    state = model.state_dict()
    state["feature_extractor.conv_layers.0.0.weight"] = torch.zeros(16, 1, 400)
    model_like = type("M", (), {"state_dict": lambda self: state})()
    lightning_checkpoint(tmp_path / "s.ckpt", model_like, "HuBERT")
    with pytest.raises(ScpcError, match=r"kernels \[400, 3, 3, 3, 3, 2, 2\], not fairseq's"):
        import_checkpoint("spin", tmp_path / "s.ckpt", tmp_path / "s2.ckpt")
