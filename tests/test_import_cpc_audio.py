"""scpc-import cpc-audio: CPC_audio checkpoints equal CPC_audio's own model code (s3prl's copy)."""

import json

import pytest
import torch
from original_code import s3prl_module

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint

LENGTHS = [16000, 12345, 3200]  # a padded batch of several lengths
TOLERANCE = 1e-4


def original_model(hidden=32, gar=24, levels=2, norm="layerNorm", mode="LSTM", seed=0):
    """A random-weight CPC model built with CPC_audio's classes; norms get random scales."""
    cpc = s3prl_module("upstream.cpc.model")
    torch.manual_seed(seed)
    model = cpc.CPCModel(
        cpc.CPCEncoder(hidden, norm), cpc.CPCAR(hidden, gar, False, levels, mode=mode)
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "batchNorm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    return model.eval()


def config(hidden=32, gar=24, levels=2, norm="layerNorm", mode="LSTM"):
    return {
        "hiddenEncoder": hidden,
        "hiddenGar": gar,
        "nLevelsGRU": levels,
        "arMode": mode,
        "normMode": norm,
        "encoder_type": "cpc",
        "cpc_mode": None,
        "pathDB": "/data/LibriSpeech/train-clean-100",
    }


def wavs():
    torch.manual_seed(1)
    return [torch.randn(n) * 0.1 for n in LENGTHS]


def compare(model, ckpt):
    """Max abs difference of the encoder's and the context network's outputs: ours on the
    padded batch, the original on each utterance alone (its padding would leak into the last
    frames, so alone is what it computes for that utterance)."""
    ours = load_inference_checkpoint(ckpt)
    batch = torch.nn.utils.rnn.pad_sequence(wavs(), batch_first=True)
    with torch.no_grad():
        out = ours(batch, torch.tensor(LENGTHS))
        diffs = {"encoder": 0.0, "context": 0.0}
        for n, wav in enumerate(wavs()):
            encoded = model.gEncoder(wav[None, None]).transpose(1, 2)[0]
            context = model.gAR(encoded[None])[0]
            frames = int(out.lens[n])
            assert frames == len(encoded)
            diffs["encoder"] = max(
                diffs["encoder"], float((out.hidden_states[0][n, :frames] - encoded).abs().max())
            )
            diffs["context"] = max(
                diffs["context"], float((out.output[n, :frames] - context).abs().max())
            )
            assert not out.output[n, frames:].any()  # padding stays zero
    print(f"cpc-audio max abs difference: {diffs}")
    return diffs


@pytest.mark.parametrize(
    "norm,mode,levels",
    [
        ("layerNorm", "LSTM", 2),
        ("batchNorm", "GRU", 1),
        ("instanceNorm", "LSTM", 1),
        ("ID", "RNN", 3),
    ],
)
def test_every_layer_equals_cpc_audio(tmp_path, norm, mode, levels):
    model = original_model(norm=norm, mode=mode, levels=levels)
    src = tmp_path / "cpc.pt"
    torch.save(
        {"config": config(norm=norm, mode=mode, levels=levels), "weights": model.state_dict()}, src
    )
    ckpt = import_checkpoint("cpc-audio", src, tmp_path / "exp" / "cpc")
    diffs = compare(model, ckpt)
    assert max(diffs.values()) <= TOLERANCE
    # hidden states: the encoder, then each recurrent layer
    assert (
        len(load_inference_checkpoint(ckpt)(torch.zeros(1, 800), torch.tensor([800])).hidden_states)
        == 1 + levels
    )


def test_cpc_audio_training_checkpoint_with_its_arguments_beside_it(tmp_path):
    """CPC_audio's own checkpoint_N.pt: weights under gEncoder (DataParallel's module.
    prefix), arguments in checkpoint_args.json."""
    model = original_model(levels=1)
    src = tmp_path / "checkpoint_30.pt"
    weights = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"gEncoder": weights, "cpcCriterion": {}, "best": None}, src)
    (tmp_path / "checkpoint_args.json").write_text(json.dumps(config(levels=1)))
    ckpt = import_checkpoint("cpc-audio", src, tmp_path / "cpc.ckpt")
    assert max(compare(model, ckpt).values()) <= TOLERANCE


def test_import_records_provenance_and_model_yaml(tmp_path):
    model = original_model()
    src = tmp_path / "cpc_small.pt"
    torch.save({"config": config(), "weights": model.state_dict()}, src)
    ckpt = import_checkpoint("cpc-audio", src, tmp_path / "exp" / "zr21.cpc-small", version=2)
    assert ckpt == tmp_path / "exp" / "zr21.cpc-small" / "version_2" / "best.ckpt"
    provenance = read_checkpoint(ckpt)["provenance"]
    imported = provenance["imported"]
    assert provenance["name"] == "zr21.cpc-small"
    assert imported["format"] == "cpc-audio" and imported["source"] == "cpc_small.pt"
    import hashlib

    assert imported["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert imported["original"]["nLevelsGRU"] == 2
    assert provenance["train_data"] == "/data/LibriSpeech/train-clean-100"
    assert "imported" in (ckpt.parent / "model.yaml").read_text()


@pytest.mark.parametrize(
    "payload,message",
    [
        ({"config": config()}, "no 'weights' or 'gEncoder' entry"),
        ({"weights": {}}, "no 'config' entry and no checkpoint_args.json"),
        (
            {"config": config(), "weights": {"gEncoder.conv0.weight": torch.zeros(1)}},
            "no gEncoder.conv0.bias",
        ),
        (
            {"config": {**config(), "arMode": "transformer"}, "weights": {}},
            "arMode 'transformer' is not supported",
        ),
        ([1, 2], "does not hold a dictionary"),
    ],
)
def test_damaged_or_unsupported_input_is_one_line_and_writes_nothing(tmp_path, payload, message):
    src = tmp_path / "bad.pt"
    torch.save(payload, src)
    with pytest.raises(ScpcError, match=message) as e:
        import_checkpoint("cpc-audio", src, tmp_path / "exp" / "bad")
    assert str(src) in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "exp").exists()


def test_weights_of_the_wrong_shape_name_the_tensor(tmp_path):
    model = original_model()
    src = tmp_path / "cpc.pt"
    torch.save({"config": config(hidden=64), "weights": model.state_dict()}, src)
    with pytest.raises(ScpcError, match=r"convs.0.weight has shape \(32, 1, 10\)"):
        import_checkpoint("cpc-audio", src, tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()


def test_truncated_file_is_one_line(tmp_path):
    src = tmp_path / "cpc.pt"
    torch.save({"config": config(), "weights": original_model().state_dict()}, src)
    src.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(ScpcError, match="not a readable CPC_audio checkpoint"):
        import_checkpoint("cpc-audio", src, tmp_path / "x.ckpt")
