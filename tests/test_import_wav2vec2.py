"""scpc's wav2vec 2.0 / HuBERT encoder and scpc-import hubert / wav2vec2 against fairseq's
model code (s3prl 0.4.18's copy) and s3prl's upstream: every hidden state s3prl exposes (each
layer's input and the encoder's output) on a padded batch, against the original on each
utterance alone."""

import pytest
import torch
from original_code import CONV, SMALL, TOLERANCE, fairseq_differences, run_padded, s3prl_module

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint
from scpc.models.wav2vec2 import Wav2Vec2Encoder, fairseq_state

LENGTHS = [8000, 6321, 2500]


def original_hubert(mode, layer_norm_first, seed=0):
    hubert = s3prl_module("upstream.hubert.hubert_model")
    cfg = hubert.HubertConfig(
        **SMALL,
        label_rate=50.0,
        extractor_mode=mode,
        layer_norm_first=layer_norm_first,
        conv_bias=mode == "layer_norm",
    )
    task = hubert.HubertPretrainingConfig(label_rate=50.0)
    torch.manual_seed(seed)
    model = hubert.HubertModel(cfg, task, [["a", "b", "c"]]).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model, cfg


@pytest.mark.parametrize("mode,pre_ln", [("default", False), ("layer_norm", True)])
def test_every_hidden_state_equals_fairseqs_hubert(mode, pre_ln):
    model, cfg = original_hubert(mode, pre_ln)
    ours = Wav2Vec2Encoder(
        conv_layers=CONV,
        extractor_mode=mode,
        conv_bias=cfg.conv_bias,
        embed_dim=32,
        num_layers=2,
        num_heads=4,
        ffn_dim=64,
        layer_norm_first=pre_ln,
        conv_pos=16,
        conv_pos_groups=4,
    ).eval()
    ours.load_state_dict(fairseq_state(model.state_dict(), 2, len(CONV)))
    torch.manual_seed(1)
    wavs = [torch.randn(n) * 0.1 for n in LENGTHS]
    out = run_padded(ours, wavs, channel_dim=True)
    worst = fairseq_differences(out, model, wavs)
    assert len(worst) == 3
    for n in range(len(wavs)):
        assert not out.output[n, int(out.lens[n]) :].any()
    print(
        f"hubert ({mode}, pre-LN {pre_ln}) max abs difference per hidden state: {[f'{d:.1e}' for d in worst]}"
    )
    assert max(worst) <= TOLERANCE
    assert ours.downsampling_factor == 5 * 2 * 2 * 2


# ------------------------------------------------------------------ scpc-import hubert / wav2vec2


def converted_checkpoint(path, model, cfg, normalize):
    """s3prl's converted layout (what its upstream/hubert loads)."""
    import dataclasses

    task = {"label_rate": 50.0, "sample_rate": 16000, "normalize": normalize}
    torch.save(
        {
            "task_cfg": task,
            "model_cfg": dataclasses.asdict(cfg),
            "model_weight": model.state_dict(),
            "dictionaries_symbols": [["a", "b", "c"]],
        },
        path,
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_hubert_import_equals_s3prls_hubert_upstream(tmp_path, normalize):
    """s3prl's hubert UpstreamExpert (its waveform normalisation included) on each utterance
    alone, against the imported checkpoint on a padded batch."""
    model, cfg = original_hubert("default", False)
    src = tmp_path / "hubert.pt"
    converted_checkpoint(src, model, cfg, normalize)
    expert = s3prl_module("upstream.hubert.expert").UpstreamExpert(str(src)).eval()
    ckpt = import_checkpoint("hubert", src, tmp_path / "exp" / "hubert")
    ours = load_inference_checkpoint(ckpt)
    assert ours.frontend.config.get("normalize", False) is normalize
    torch.manual_seed(2)
    wavs = [torch.randn(n) * 0.1 + 0.01 for n in LENGTHS]
    with torch.no_grad():
        out = ours(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor(LENGTHS))
        worst = 0.0
        for n, wav in enumerate(wavs):
            theirs = expert([wav])["hidden_states"]
            frames = int(out.lens[n])
            for mine, t in zip(out.hidden_states, theirs):
                assert t.shape[1] == frames
                worst = max(worst, float((mine[n, :frames] - t[0]).abs().max()))
    print(f"hubert import (normalize {normalize}) max abs difference: {worst:.1e}")
    assert worst <= TOLERANCE


def test_fairseq_layout_and_wav2vec2(tmp_path):
    """fairseq's own layout (cfg.model, cfg.task, model) of a wav2vec 2.0 model built by its
    code (s3prl's copy), pre-training heads (quantiser, projections) beside the encoder."""
    w2v = s3prl_module("upstream.wav2vec2.wav2vec2_model")
    cfg = w2v.Wav2Vec2Config(
        **SMALL,
        extractor_mode="layer_norm",
        layer_norm_first=True,
        latent_vars=8,
        latent_groups=2,
        final_dim=16,
    )
    torch.manual_seed(3)
    model = w2v.Wav2Vec2Model(cfg).eval()
    import dataclasses

    src = tmp_path / "wav2vec_small.pt"
    model_cfg = dataclasses.asdict(cfg)
    torch.save(
        {"cfg": {"model": model_cfg, "task": {"normalize": False}}, "model": model.state_dict()},
        src,
    )
    ours = load_inference_checkpoint(import_checkpoint("wav2vec2", src, tmp_path / "w.ckpt"))
    torch.manual_seed(4)
    wavs = [torch.randn(n) * 0.1 for n in LENGTHS]
    out = run_padded(ours, wavs)
    worst = max(fairseq_differences(out, model, wavs))
    print(f"wav2vec2 import max abs difference: {worst:.1e}")
    assert worst <= TOLERANCE
    assert read_checkpoint(tmp_path / "w.ckpt")["downsampling_factor"] == 40


@pytest.mark.parametrize(
    "payload,message",
    [
        ({"cfg": {"model": {}, "task": {}}}, "no 'model' or 'model_weight' entry"),
        ({"model": {}}, "no 'cfg' or 'args' entry"),
        (
            {
                "cfg": {"model": {"conv_feature_layers": "__import__('os')"}, "task": {}},
                "model": {},
            },
            "unreadable conv_feature_layers",
        ),
        (
            {"cfg": {"model": {"layer_type": "conformer"}, "task": {}}, "model": {}},
            "layer_type 'conformer'",
        ),
        (
            {"cfg": {"model": {}, "task": {}}, "model": {"x": torch.zeros(1)}},
            r"weights do not fit its config \(no feature_extractor",
        ),
    ],
)
def test_foreign_input_is_one_line_and_writes_nothing(tmp_path, payload, message):
    src = tmp_path / "bad.pt"
    torch.save(payload, src)
    with pytest.raises(ScpcError, match=message):
        import_checkpoint("hubert", src, tmp_path / "exp" / "bad")
    assert not (tmp_path / "exp").exists()
