"""scpc-import hf against Hugging Face transformers' own HubertModel, Wav2Vec2Model and
WavLMModel: small random-weight models saved by ``save_pretrained`` (safetensors, sharded
safetensors, pytorch_model.bin; a task model's prefixed weights), imported, and every hidden
state transformers returns (``output_hidden_states``: each layer's input, then the output) on
a padded batch, against transformers' feature extractor and model on each utterance alone."""

import json

import pytest
import torch

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

LENGTHS = [8000, 6321, 2500]
TOLERANCE = 1e-4
SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "conv_dim": [24, 24, 24, 24],
    "conv_kernel": [10, 3, 3, 2],
    "conv_stride": [5, 2, 2, 2],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def original(kind: str, stable: bool, seed: int = 0):
    """(config class, model class) of ``kind``, built with random weights (norms too)."""
    classes = {
        "hubert": (transformers.HubertConfig, transformers.HubertModel),
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
        "wavlm": (transformers.WavLMConfig, transformers.WavLMModel),
    }
    config_class, model_class = classes[kind]
    extra = {"num_buckets": 32, "max_bucket_distance": 40} if kind == "wavlm" else {}
    config = config_class(
        **SMALL,
        **extra,
        feat_extract_norm="layer" if stable else "group",
        do_stable_layer_norm=stable,
        conv_bias=stable,
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "gru_rel_pos" in name or "rel_attn_embed" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.mark.parametrize(
    "kind,stable,save,normalize",
    [
        ("hubert", False, "safetensors", False),
        ("wav2vec2", True, "bin", True),
        ("wavlm", False, "sharded", False),
        ("wavlm", True, "safetensors", True),
    ],
)
def test_every_hidden_state_equals_transformers(tmp_path, kind, stable, save, normalize):
    model = original(kind, stable)
    src = tmp_path / f"{kind}-hf"
    if save == "sharded":
        model.save_pretrained(src, max_shard_size="40KB")
        assert (src / "model.safetensors.index.json").is_file()
    else:
        model.save_pretrained(src, safe_serialization=save == "safetensors")
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=normalize)
    extractor.save_pretrained(src)
    ckpt = import_checkpoint("hf", src, tmp_path / "exp" / kind)
    ours = load_inference_checkpoint(ckpt)
    weights = {"bin": "pytorch_model.bin", "sharded": "model.safetensors.index.json"}
    imported = read_checkpoint(ckpt)["provenance"]["imported"]
    assert imported["format"] == "hf" and imported["source"] == src.name
    assert (
        len(imported["sha256"]) == 64 and (src / weights.get(save, "model.safetensors")).is_file()
    )
    torch.manual_seed(5)
    wavs = [torch.randn(n) * 0.1 + 0.01 for n in LENGTHS]
    with torch.no_grad():
        out = ours(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor(LENGTHS))
        worst = [0.0] * len(out.hidden_states)
        for n, wav in enumerate(wavs):
            inputs = extractor(wav.numpy(), sampling_rate=16000, return_tensors="pt")
            theirs = model(inputs.input_values, output_hidden_states=True).hidden_states
            frames = int(out.lens[n])
            assert len(theirs) == len(out.hidden_states) == 4
            for i, (mine, t) in enumerate(zip(out.hidden_states, theirs)):
                assert t.shape[1] == frames
                worst[i] = max(worst[i], float((mine[n, :frames] - t[0]).abs().max()))
    print(
        f"hf {kind} (stable LN {stable}, {save}, normalize {normalize}) max abs difference "
        f"per hidden state: {[f'{d:.1e}' for d in worst]}"
    )
    assert max(worst) <= TOLERANCE


def test_a_task_models_weights_import_without_its_head(tmp_path):
    """HubertForCTC's directory: its ``hubert.`` weights, the CTC head dropped."""
    base = original("hubert", False)
    ctc = transformers.HubertForCTC(base.config)
    ctc.hubert.load_state_dict(base.state_dict())
    ctc.save_pretrained(tmp_path / "ctc")
    ours = load_inference_checkpoint(import_checkpoint("hf", tmp_path / "ctc", tmp_path / "c.ckpt"))
    wav = torch.randn(1, 4000) * 0.1
    with torch.no_grad():
        mine = ours(wav, torch.tensor([4000])).hidden_states[-1]
        theirs = base(wav).last_hidden_state
    assert float((mine - theirs).abs().max()) <= TOLERANCE


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda d: None, "no config.json"),
        (lambda d: (d / "config.json").write_text("{"), "not readable JSON"),
        (
            lambda d: (d / "config.json").write_text(json.dumps({"model_type": "bert"})),
            "model_type 'bert' is not one of",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({"model_type": "hubert", "hidden_act": "relu", **SMALL})
            ),
            "activation other than GELU is not supported",
        ),
        (
            lambda d: (d / "config.json").write_text(json.dumps({"model_type": "hubert", **SMALL})),
            "no model.safetensors",
        ),
        (
            lambda d: (
                (d / "config.json").write_text(json.dumps({"model_type": "hubert", **SMALL})),
                (d / "model.safetensors").write_bytes(b"not a safetensors file"),
            ),
            "not a readable safetensors file",
        ),
    ],
)
def test_foreign_input_is_one_line_and_writes_nothing(tmp_path, setup, message):
    src = tmp_path / "dir"
    src.mkdir()
    setup(src)
    with pytest.raises(ScpcError, match=message):
        import_checkpoint("hf", src, tmp_path / "exp" / "bad")
    assert not (tmp_path / "exp").exists()


def test_weights_that_miss_a_layer_name_the_directory(tmp_path):
    model = original("hubert", False)
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["num_hidden_layers"] = 4
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ScpcError, match=r"weights do not fit its config \(no encoder.layers.3"):
        import_checkpoint("hf", tmp_path / "m", tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
