"""scpc's WavLM encoder against WavLM's own code (s3prl 0.4.18's upstream/wavlm): every hidden
state s3prl exposes (each layer's input and the encoder's output), padded batch against the
original on each utterance alone."""

import pytest
import torch
from original_code import CONV, SMALL, TOLERANCE, fairseq_differences, run_padded, s3prl_module

from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.models.wavlm import WavLMEncoder, relative_buckets, wavlm_state

LENGTHS = [8000, 6321, 2500]


def original_wavlm(pre_ln, gated, seed=0):
    wavlm = s3prl_module("upstream.wavlm.WavLM")
    cfg = wavlm.WavLMConfig(
        {
            **SMALL,
            "extractor_mode": "layer_norm" if pre_ln else "default",
            "encoder_layers": 3,
            "layer_norm_first": pre_ln,
            "relative_position_embedding": True,
            "num_buckets": 32,
            "max_distance": 40,
            "gru_rel_pos": gated,
        }
    )
    torch.manual_seed(seed)
    model = wavlm.WavLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "grep" in name or "relative_attention_bias" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model, cfg


def test_buckets_equal_wavlms():
    wavlm = s3prl_module("upstream.wavlm.modules")
    attn = wavlm.MultiheadAttention(
        32,
        4,
        self_attention=True,
        has_relative_attention_bias=True,
        num_buckets=32,
        max_distance=40,
    )
    rel = torch.arange(90)[None, :] - torch.arange(90)[:, None]
    assert torch.equal(
        attn._relative_positions_bucket(rel, bidirectional=True), relative_buckets(90, 32, 40)
    )


@pytest.mark.parametrize("pre_ln,gated", [(False, True), (True, True), (False, False)])
def test_every_hidden_state_equals_wavlms(pre_ln, gated):
    model, cfg = original_wavlm(pre_ln, gated)
    ours = WavLMEncoder(
        conv_layers=CONV,
        extractor_mode=cfg.extractor_mode,
        conv_bias=False,
        embed_dim=32,
        num_layers=3,
        num_heads=4,
        ffn_dim=64,
        layer_norm_first=pre_ln,
        conv_pos=16,
        conv_pos_groups=4,
        num_buckets=32,
        max_distance=40,
        gru_rel_pos=gated,
    ).eval()
    ours.load_state_dict(wavlm_state(model.state_dict(), 3, len(CONV)))
    torch.manual_seed(1)
    wavs = [torch.randn(n) * 0.1 for n in LENGTHS]
    out = run_padded(ours, wavs, channel_dim=True)
    worst = fairseq_differences(out, model, wavs)
    assert len(worst) == 4
    print(
        f"wavlm (pre-LN {pre_ln}, gated {gated}) max abs difference: {[f'{d:.1e}' for d in worst]}"
    )
    assert max(worst) <= TOLERANCE
    assert ours.to_json()["args"]["num_buckets"] == 32


def test_wavlm_checkpoint_imports_and_equals_s3prls_wavlm_upstream(tmp_path):
    """A checkpoint in WavLM's own layout ({"cfg": flat config, "model": weights}) through
    s3prl's wavlm UpstreamExpert (normalize on, as WavLM Large) and through scpc-import."""
    model, cfg = original_wavlm(True, True)
    src = tmp_path / "WavLM-tiny.pt"
    torch.save({"cfg": {**vars(cfg), "normalize": True}, "model": model.state_dict()}, src)
    expert = s3prl_module("upstream.wavlm.expert").UpstreamExpert(str(src)).eval()
    ours = load_inference_checkpoint(import_checkpoint("wavlm", src, tmp_path / "exp" / "wavlm"))
    assert ours.frontend.config == {"name": "raw", "normalize": True, "normalize_eps": 1e-5}
    torch.manual_seed(5)
    wavs = [torch.randn(n) * 0.1 + 0.02 for n in LENGTHS]
    worst = 0.0
    with torch.no_grad():
        out = ours(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor(LENGTHS))
        for n, wav in enumerate(wavs):
            frames = int(out.lens[n])
            theirs = expert([wav])["hidden_states"]
            assert len(theirs) == len(out.hidden_states)
            for mine, t in zip(out.hidden_states, theirs):
                worst = max(worst, float((mine[n, :frames] - t[0, :frames]).abs().max()))
    print(f"wavlm import max abs difference: {worst:.1e}")
    assert worst <= TOLERANCE
