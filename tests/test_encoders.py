"""Encoders: padded batches equal per-utterance runs, causality, JSON round trip, frame counts."""

import pytest
import torch

from scpc.errors import ScpcError
from scpc.models import (
    CausalConvEncoder,
    CausalSelfAttentionEncoder,
    ConvEncoder,
    EncoderSequence,
    FeedForwardEncoder,
    IdentityEncoder,
    RecurrentEncoder,
    SelfAttentionEncoder,
    encoder_from_json,
)
from scpc.models.encoders import UtteranceCmvnEncoder

C = 12


def all_encoders():
    return {
        "id": IdentityEncoder(C),
        "ff": FeedForwardEncoder(C, 16, "tanh"),
        "conv-none": ConvEncoder(C, 16, "none"),
        "conv-batch": ConvEncoder(C, 16, "batch"),
        "conv-channel": ConvEncoder(C, 16, "channel"),
        "conv-instance": ConvEncoder(C, 16, "instance"),
        "lstm": RecurrentEncoder(C, 16, 2, "lstm"),
        "gru": RecurrentEncoder(C, 16, 1, "gru"),
        "rnn": RecurrentEncoder(C, 16, 1, "rnn"),
        "csa": CausalSelfAttentionEncoder(C, 2, 2, 32, max_width=5),
        "csa-alibi": CausalSelfAttentionEncoder(C, 1, 4, 32, position="alibi"),
        "sa": SelfAttentionEncoder(C, 2, 2, 32),
        "sa-width": SelfAttentionEncoder(C, 1, 2, 32, max_width=3, position="alibi"),
        "sa-tera": SelfAttentionEncoder(C, 2, 2, 32, position="sinusoid", activation="gelu"),
        "sa-shared": SelfAttentionEncoder(C, 3, 2, 32, position="sinusoid", share_layers=True),
        "cmvn": UtteranceCmvnEncoder(C),
        "cconv": CausalConvEncoder(C, 16, 2, 4),
        "seq": EncoderSequence(FeedForwardEncoder(C, 16), RecurrentEncoder(16, 8, 2, "lstm")),
    }


@pytest.mark.parametrize("name", list(all_encoders()))
def test_padded_batch_equals_per_utterance_runs(name):
    torch.manual_seed(0)
    enc = all_encoders()[name].eval()
    lens = torch.tensor([1700, 900, 1231]) if name.startswith("conv") else torch.tensor([17, 9, 12])
    x = torch.randn(3, int(lens.max()), C)
    with torch.no_grad():
        batch = enc(x, lens)
        assert (
            (batch.output.abs().sum(-1) != 0).sum(1).le(batch.lens).all()
        )  # zero past the lengths
        for n in range(3):
            one = enc(x[n : n + 1, : lens[n]], lens[n : n + 1])
            assert one.lens.item() == batch.lens[n].item()
            m = int(one.lens)
            torch.testing.assert_close(batch.output[n, :m], one.output[0, :m], atol=1e-5, rtol=1e-4)
            assert len(one.hidden_states) == len(batch.hidden_states)
            for hb, ho in zip(batch.hidden_states, one.hidden_states):
                torch.testing.assert_close(hb[n, :m], ho[0, :m], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["csa", "cconv", "lstm"])
def test_causal_encoders_ignore_the_future(name):
    torch.manual_seed(0)
    enc = all_encoders()[name].eval()
    x = torch.randn(1, 20, C)
    lens = torch.tensor([20])
    y = x.clone()
    y[:, 11:] = torch.randn(1, 9, C)
    with torch.no_grad():
        torch.testing.assert_close(enc(x, lens).output[:, :11], enc(y, lens).output[:, :11])


def test_causal_attention_sees_exactly_its_width():
    torch.manual_seed(0)
    width = 4
    enc = CausalSelfAttentionEncoder(C, 1, 2, 32, max_width=width).eval()
    x = torch.randn(1, 20, C)
    lens = torch.tensor([20])
    t = 12
    with torch.no_grad():
        base = enc(x, lens).output[0, t]
        far, near = x.clone(), x.clone()
        far[0, t - width] += 5  # just outside the window
        near[0, t - width + 1] += 5  # the oldest frame inside it
        torch.testing.assert_close(enc(far, lens).output[0, t], base)
        assert not torch.allclose(enc(near, lens).output[0, t], base)


def test_causal_conv_receptive_field():
    enc = CausalConvEncoder(C, 8, num_layers=2, kernel_size=4).eval()
    x = torch.randn(1, 20, C)
    lens = torch.tensor([20])
    t, field = 15, 2 * 3 + 1
    with torch.no_grad():
        base = enc(x, lens).output[0, t]
        far = x.clone()
        far[0, t - field] += 5
        torch.testing.assert_close(enc(far, lens).output[0, t], base)


def test_json_round_trip_rebuilds_the_same_function():
    torch.manual_seed(0)
    seq = EncoderSequence(
        ConvEncoder(1, 16, "channel"), CausalSelfAttentionEncoder(16, 1, 2, 32, max_width=8)
    )
    copy = encoder_from_json(seq.to_json())
    copy.load_state_dict(seq.state_dict())
    x, lens = torch.randn(2, 3200, 1), torch.tensor([3200, 2000])
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(x, lens).output, seq.eval()(x, lens).output)
    assert copy.downsampling_factor == 160


def test_conv_encoder_frames_per_input_length():
    enc = ConvEncoder(1, 8)
    assert enc.downsampling_factor == 160
    lens = torch.arange(465, 20481, 97)
    out = enc(torch.zeros(len(lens), int(lens.max()), 1), lens)
    torch.testing.assert_close(out.lens, enc.output_lens(lens))
    assert enc.output_lens(torch.tensor([20480])).item() == 128


def test_bad_configurations_are_clear_errors():
    with pytest.raises(ScpcError, match="unknown norm 'layer'"):
        ConvEncoder(1, 8, "layer")
    with pytest.raises(ScpcError, match="outputs 16 channels but recur takes 8"):
        EncoderSequence(FeedForwardEncoder(C, 16), RecurrentEncoder(8, 8))
    with pytest.raises(ScpcError, match="unknown encoder 'transformer'"):
        encoder_from_json({"name": "transformer", "args": {}})


def test_shared_layers_apply_one_layer_num_layers_times():
    torch.manual_seed(0)
    shared = SelfAttentionEncoder(C, 3, 2, 32, share_layers=True)
    one = SelfAttentionEncoder(C, 1, 2, 32)
    three = SelfAttentionEncoder(C, 3, 2, 32)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(shared) == count(one) < count(three)
    x, lens = torch.randn(2, 9, C), torch.tensor([9, 6])
    out = shared.eval()(x, lens)
    assert len(out.hidden_states) == 3  # one state per application
    # applying the one layer by hand three times gives the same output
    bias = shared.attention_bias(lens, 9)
    y = x
    for _ in range(3):
        y = shared.layers[0](
            y * (torch.arange(9)[None, :, None] < lens[:, None, None]), src_mask=bias
        )
    y = shared.norm(y) * (torch.arange(9)[None, :, None] < lens[:, None, None])
    torch.testing.assert_close(out.output, y)


def test_sinusoid_positions_and_utterance_cmvn():
    from scpc.masks import utterance_cmvn
    from scpc.models.encoders import sinusoid_positions

    pe = sinusoid_positions(50, 8)
    assert pe[0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    torch.testing.assert_close(pe[:, 0], torch.sin(torch.arange(50.0)))
    torch.testing.assert_close(pe[:, 7], torch.cos(torch.arange(50.0) * 10000 ** (-6 / 8)))
    x, lens = torch.randn(2, 10, 3) * 4 + 7, torch.tensor([10, 6])
    y = utterance_cmvn(x, lens)
    torch.testing.assert_close(y[1, :6].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, :6].std(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    assert y[1, 6:].abs().sum() == 0
    out = UtteranceCmvnEncoder(3)(x, lens)
    assert out.hidden_states == () and torch.equal(out.output, y)
