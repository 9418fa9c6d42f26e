"""scpc-import mockingjay / tera / audio_albert: s3prl's checkpoints equal s3prl's own model
(its PretrainedTransformer, fed the same features) at every hidden state."""

import copy
from pathlib import Path

import pytest
import torch
from original_code import s3prl_module

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint

LENGTHS = [16000, 11234, 3300]
TOLERANCE = 1e-4
AUDIO = {
    "target_level": -25,
    "win_ms": 25,
    "hop_ms": 10,
    "n_freq": 201,
    "n_mels": 40,
    "n_mfcc": 13,
    "input": {"feat_type": "mel", "channel": 0, "log": True, "delta": 1, "cmvn": True},
}


def transformer_config(**changes):
    config = {
        "hidden_size": 32,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "share_layer": False,
        "pre_layer_norm": False,
    }
    return {**config, **changes}


def original_checkpoint(path, transformer, sequence_length=0, seed=0, old_layout=False):
    """A random-weight model built by s3prl's TransformerModel, saved as s3prl saves it."""
    model_py = s3prl_module("upstream.mockingjay.model")
    torch.manual_seed(seed)
    model = model_py.TransformerModel(model_py.TransformerConfig(transformer), 80)
    with torch.no_grad():  # weights of a trained size, LayerNorms away from 1 and 0
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if "LayerNorm" in name else 0.1))
    config = {"transformer": transformer, "audio": copy.deepcopy(AUDIO)}
    config["task"] = {"sequence_length": sequence_length}
    states = {"Transformer": model.state_dict(), "Global_step": 1000}
    if old_layout:
        states["Config"] = config
    else:
        states.update(Config={"runner": {}}, Upstream_Config=config)
    torch.save(states, path)
    return config


def s3prl_hidden_states(path, tmp_path, feats):
    """s3prl's PretrainedTransformer on one utterance's features: the checkpoint without its
    audio section, so that s3prl takes features (its extracter needs torchaudio)."""
    builder = s3prl_module("upstream.mockingjay.builder")
    states = torch.load(path, weights_only=False)
    for key in ("Config", "Upstream_Config"):
        if "transformer" in states.get(key, {}):
            del states[key]["audio"]
    plain = tmp_path / "no-audio.ckpt"
    torch.save(states, plain)
    options = {
        "ckpt_file": str(plain),
        "load_pretrain": "True",
        "no_grad": "True",
        "dropout": "default",
        "spec_aug": "False",
        "spec_aug_prev": "True",
        "output_hidden_states": "True",
        "select_layer": -1,
        "permute_input": "False",
    }
    model = builder.PretrainedTransformer(options, inp_dim=feats.shape[-1]).eval()
    with torch.no_grad():
        _, hidden = model._forward(feats[None])
    return hidden[:, 0]  # (layers + 1, T, C)


def compare(fmt, src, tmp_path):
    ckpt = import_checkpoint(fmt, src, tmp_path / "exp" / fmt)
    ours = load_inference_checkpoint(ckpt)
    torch.manual_seed(1)
    wavs = [torch.randn(n) * 0.1 for n in LENGTHS]
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    with torch.no_grad():
        feats, feat_lens = ours.frontend(batch, torch.tensor(LENGTHS))
        out = ours(batch, torch.tensor(LENGTHS))
    worst = [0.0] * len(out.hidden_states)
    for n, frames in enumerate(feat_lens.tolist()):
        theirs = s3prl_hidden_states(src, tmp_path, feats[n, :frames])
        assert len(theirs) == len(out.hidden_states)
        for i, h in enumerate(out.hidden_states):
            worst[i] = max(worst[i], float((h[n, :frames] - theirs[i]).abs().max()))
        for h in out.hidden_states:
            assert not h[n, frames:].any()
    print(f"{fmt} max abs difference per hidden state: {[f'{d:.1e}' for d in worst]}")
    return worst, ckpt


@pytest.mark.parametrize(
    "fmt,changes,sequence_length",
    [
        ("tera", {}, 0),  # TERA / Mockingjay base: post-LN, GELU
        ("mockingjay", {"pre_layer_norm": True, "hidden_act": "relu"}, 0),
        ("audio_albert", {"share_layer": True}, 0),
        ("tera", {"hidden_act": "swish", "layer_norm_eps": 1e-5}, 40),  # chunks of <= 40 frames
    ],
)
@pytest.mark.slow
def test_every_hidden_state_equals_s3prl(tmp_path, fmt, changes, sequence_length):
    src = tmp_path / "states-1000.ckpt"
    original_checkpoint(src, transformer_config(**changes), sequence_length)
    worst, _ = compare(fmt, src, tmp_path)
    assert max(worst) <= TOLERANCE


def test_old_checkpoint_layout_and_provenance(tmp_path):
    src = tmp_path / "states-500000.ckpt"
    original_checkpoint(src, transformer_config(), old_layout=True)
    worst, ckpt = compare("mockingjay", src, tmp_path)
    assert max(worst) <= TOLERANCE
    payload = read_checkpoint(ckpt)
    assert payload["frontend"]["name"] == "online_mel" and payload["frontend"]["delta"] == 1
    assert payload["downsampling_factor"] == 160
    assert payload["provenance"]["imported"]["original"]["global_step"] == 1000


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda s: s["Upstream_Config"].pop("transformer"), "no 'transformer' section"),
        (lambda s: s["Upstream_Config"].pop("audio"), "no on-the-fly feature config"),
        (lambda s: s["Upstream_Config"]["audio"].update(kaldi={}), "Kaldi fbank/MFCC"),
        (lambda s: s.pop("Transformer"), "no 'Transformer' weights"),
        (
            lambda s: s["Transformer"].pop("encoder.layer.1.output.dense.bias"),
            "missing encoder.layer.1.output.dense.bias",
        ),
    ],
)
def test_damaged_input_is_one_line_and_writes_nothing(tmp_path, mutate, message):
    src = tmp_path / "states.ckpt"
    original_checkpoint(src, transformer_config())
    states = torch.load(src, weights_only=False)
    mutate(states)
    torch.save(states, src)
    with pytest.raises(ScpcError, match=message):
        import_checkpoint("tera", src, tmp_path / "exp" / "tera")
    assert not (tmp_path / "exp").exists()


def test_pickled_objects_need_allow_pickle(tmp_path):
    import argparse

    src = tmp_path / "states.ckpt"
    original_checkpoint(src, transformer_config())
    states = torch.load(src, weights_only=False)
    states["Args"] = argparse.Namespace(seed=1)  # what old runners stored
    torch.save(states, src)
    with pytest.raises(ScpcError, match="pass --allow-pickle if you trust its source"):
        import_checkpoint("tera", src, tmp_path / "a.ckpt")
    assert import_checkpoint("tera", src, tmp_path / "a.ckpt", allow_pickle=True).is_file()


# ----------------------------------------- with the features: golden fixtures (torchaudio)

FIXTURES = Path(__file__).parent / "fixtures" / "s3prl_tera"


def test_waveform_to_every_hidden_state_equals_s3prls_upstream(tmp_path):
    """s3prl's tera UpstreamExpert (torchaudio's features) on each utterance alone, against
    scpc's on a padded batch: tests/fixtures/s3prl_tera/README.md says how it was run."""
    ckpt = import_checkpoint("tera", FIXTURES / "tera.ckpt", tmp_path / "tera.ckpt")
    ours = load_inference_checkpoint(ckpt)
    wavs = torch.load(FIXTURES / "inputs.pt")["wavs"]
    expected = torch.load(FIXTURES / "expected.pt")["hidden_states"]
    lens = torch.tensor([len(w) for w in wavs])
    with torch.no_grad():
        out = ours(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), lens)
    worst = [0.0] * len(out.hidden_states)
    for n, want in enumerate(expected):
        frames = int(out.lens[n])
        assert frames == want.shape[1]
        for i, h in enumerate(out.hidden_states):
            worst[i] = max(worst[i], float((h[n, :frames] - want[i]).abs().max()))
    print(f"tera (waveform in) max abs difference per hidden state: {[f'{d:.1e}' for d in worst]}")
    assert max(worst) <= TOLERANCE
