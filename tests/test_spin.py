"""Spin: Sinkhorn normalisation, the swapped-prediction loss, PNMI, the speaker perturbation
(pitch, formants, EQ), freezing all but the last layers, and continued training of a
checkpoint through scpc-train with PNMI in the log."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, mini_feat_dirs, run_script, train_tiny

from scpc.errors import ScpcError
from scpc.models import ConvEncoder, EncoderSequence, RecurrentEncoder, SelfAttentionEncoder
from scpc.models.freeze import layer_groups, train_last_layers
from scpc.objectives import speaker_perturb as sp
from scpc.objectives.spin import SpinLoss, pnmi, sinkhorn

SR = 16000


def test_sinkhorn_balances_codes_and_normalises_frames():
    torch.manual_seed(0)
    scores = torch.randn(512, 16) * 0.3
    scores[:, 0] += 1.0  # every frame prefers code 0
    q = sinkhorn(scores, eps=0.05, iters=20)
    torch.testing.assert_close(q.sum(1), torch.ones(512))
    torch.testing.assert_close(q.sum(0), torch.full((16,), 512 / 16), rtol=1e-2, atol=0)
    # the reference iteration, written out
    ref = torch.exp(scores / 0.05).T
    ref /= ref.sum()
    for _ in range(3):
        ref /= ref.sum(1, keepdim=True) * 16
        ref /= ref.sum(0, keepdim=True) * 512
    torch.testing.assert_close(sinkhorn(scores, 0.05, 3), (ref * 512).T)


def test_swapped_prediction_loss_matches_a_direct_computation():
    torch.manual_seed(0)
    loss = SpinLoss(6, codebook_size=8, projection_size=5, temperature=0.1)
    assert torch.allclose(loss.codebook.weight.norm(dim=1), torch.ones(8))
    a, b = torch.randn(40, 6), torch.randn(40, 6)
    out = loss(a, b)
    s1, s2 = loss.scores(a), loss.scores(b)
    q1, q2 = sinkhorn(s1), sinkhorn(s2)
    ce = lambda q, s: -(q * torch.log_softmax(s / 0.1, -1)).sum(-1).mean()  # noqa: E731
    torch.testing.assert_close(out.loss, 0.5 * (ce(q1, s2) + ce(q2, s1)))
    assert out.accuracy == (s1.argmax(-1) == s2.argmax(-1)).float().mean()
    with torch.no_grad():
        loss.codebook.weight.mul_(3.0)
    loss.normalize_codebook()
    assert torch.allclose(loss.codebook.weight.norm(dim=1), torch.ones(8))


def test_pnmi_of_perfect_independent_and_known_tables():
    assert pnmi(torch.tensor([[5.0, 0], [0, 5]])) == pytest.approx(1.0)
    assert pnmi(torch.tensor([[2.0, 2], [4, 4]])) == pytest.approx(0.0, abs=1e-12)
    # two phones, three codes: I = sum p log p / (pp pc), H = log 2
    t = torch.tensor([[3.0, 1, 0], [0, 1, 3]])
    p = t / 8
    mi = sum(
        float(p[i, j]) * math.log(float(p[i, j]) / (float(p[i].sum()) * float(p[:, j].sum())))
        for i in range(2)
        for j in range(3)
        if p[i, j] > 0
    )
    assert pnmi(t) == pytest.approx(mi / math.log(2))


def voice(f0: float, formant: float = 1000.0, seconds: float = 2.0) -> np.ndarray:
    """A harmonic tone through one resonance (Q 5): a crude vowel."""
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 80) if f0 * k < 7000)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    spec /= np.sqrt((1 - (f / formant) ** 2) ** 2 + (f / (formant * 5)) ** 2)
    x = np.fft.irfft(spec, len(x))
    return 0.5 * x / np.abs(x).max()


def f0_of(x: np.ndarray) -> float:
    """The first autocorrelation peak within 80 % of the best, 50-500 Hz."""
    x = x[SR // 4 : -SR // 4]
    ac = np.correlate(x, x, "full")[len(x) - 1 :]
    lo, hi = SR // 500, SR // 50
    seg = ac[lo:hi]
    best = seg.max()
    for i in range(1, len(seg) - 1):
        if seg[i] >= 0.8 * best and seg[i] >= seg[i - 1] and seg[i] >= seg[i + 1]:
            return SR / (lo + i)
    return SR / (lo + int(np.argmax(seg)))


def centroid(x: np.ndarray) -> float:
    """Spectral centroid of the long-term spectrum between 400 and 4000 Hz."""
    power = (np.abs(sp.stft(x)) ** 2).mean(0)
    f = np.fft.rfftfreq(sp.N_FFT, 1 / SR)
    m = (f > 400) & (f < 4000)
    return float((power[m] * f[m]).sum() / power[m].sum())


@pytest.mark.parametrize("ratio", [1.5, 1 / 1.5, 2.0])
def test_pitch_shift_moves_f0_and_keeps_the_envelope(ratio):
    x = voice(120.0)
    y = sp.pitch_formant_shift(x, ratio, 1.0)
    assert len(y) == len(x)
    assert f0_of(y) == pytest.approx(120 * ratio, rel=0.03)
    # harmonics sample the envelope more sparsely at a higher pitch: within 10 %
    assert centroid(y) == pytest.approx(centroid(x), rel=0.1)


def test_formant_shift_moves_the_envelope_not_the_pitch():
    x = voice(120.0)
    up, down = sp.pitch_formant_shift(x, 1.0, 1.3), sp.pitch_formant_shift(x, 1.0, 1 / 1.3)
    assert f0_of(up) == pytest.approx(120, rel=0.02) and f0_of(down) == pytest.approx(120, rel=0.02)
    assert centroid(up) > 1.12 * centroid(x) and centroid(down) < 0.85 * centroid(x)


def test_eq_bands_have_their_gains_and_the_draw_follows_spin():
    centres = np.array([60.0, 500.0, 2000.0, 7600.0])
    gains = np.array([6.0, -9.0, 4.0, -5.0])
    r = sp.eq_response(centres, gains, np.array([2.0, 3.0, 4.0, 5.0]), np.array([500.0, 2000.0]))
    # a peaking band has its gain at its centre (neighbours add a little)
    assert 20 * np.log10(abs(r[0])) == pytest.approx(-9.0, abs=0.6)
    assert 20 * np.log10(abs(r[1])) == pytest.approx(4.0, abs=0.6)
    shelf = sp.eq_response(np.array([60.0, 1000.0, 7600.0]), np.array([6.0, 0.0, -5.0]),
                           np.array([2.0, 2.0, 2.0]), np.array([5.0, 7990.0]))  # fmt: skip
    assert 20 * np.log10(abs(shelf)) == pytest.approx([6.0, -5.0], abs=0.5)
    rng = np.random.default_rng(0)
    draws = np.array([sp.draw_ratios(rng) for _ in range(4000)])
    pitch, formant = draws[:, 0], draws[:, 1]
    assert abs((pitch < 1).mean() - 0.5) < 0.03 and abs((formant < 1).mean() - 0.5) < 0.03
    assert pitch.min() >= 0.5 and pitch.max() <= 2.0 and formant.min() >= 1 / 1.4
    assert formant.max() <= 1.4


def test_perturb_speaker_is_seeded_and_bounded():
    x = voice(150.0, seconds=1.0).astype(np.float32)
    a = sp.perturb_speaker(x, np.random.default_rng(3))
    b = sp.perturb_speaker(x, np.random.default_rng(3))
    assert a.dtype == np.float32 and a.shape == x.shape and np.abs(a).max() <= 1.0
    assert np.array_equal(a, b) and not np.allclose(a, x)


def test_only_the_last_layers_train():
    seq = EncoderSequence(ConvEncoder(1, 8), RecurrentEncoder(8, 8))
    assert len(layer_groups(seq)) == 2
    n = train_last_layers(seq, 1)
    assert n == sum(p.numel() for p in seq.encoders[1].parameters())
    assert not any(p.requires_grad for p in seq.encoders[0].parameters())
    sa = SelfAttentionEncoder(8, 3, 2, 16, position="sinusoid")
    groups = layer_groups(sa)
    assert len(groups) == 3 and sa.norm in groups[-1] and sa.input_norm in groups[0]
    train_last_layers(sa, 2)
    assert not any(p.requires_grad for p in sa.layers[0].parameters())
    assert all(p.requires_grad for p in [*sa.layers[2].parameters(), *sa.norm.parameters()])
    assert len(layer_groups(SelfAttentionEncoder(8, 3, 2, 16, share_layers=True))) == 1
    with pytest.raises(ScpcError, match="trainable_layers must be 1..2"):
        train_last_layers(seq, 3)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_wav2vec2_layers_freeze_as_spin_freezes_hubert(pre_ln):
    """Spin's freeze_layers ["pos", 0, ..., 10]: the extractor, projection and position
    convolution are one layer before the Transformer layers; the final LayerNorm trains with
    the last layer only in pre-LN models."""
    from scpc.models.wav2vec2 import Wav2Vec2Encoder

    enc = Wav2Vec2Encoder(conv_layers=[[8, 10, 5], [8, 3, 2]], embed_dim=16, num_layers=3,
                          num_heads=2, ffn_dim=32, conv_pos=4, conv_pos_groups=2,
                          layer_norm_first=pre_ln)  # fmt: skip
    groups = layer_groups(enc)
    assert len(groups) == 4 and enc.pos_conv in groups[0] and enc.conv_layers in groups[0]
    assert (enc.encoder_layer_norm in groups[-1]) is pre_ln
    train_last_layers(enc, 2)
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in enc.named_parameters()
                 if p.requires_grad}  # fmt: skip
    assert {"layers.1", "layers.2"} <= trainable and "layers.0" not in trainable
    assert ("encoder_layer_norm.weight" in trainable) is pre_ln
    assert not any(p.requires_grad for p in enc.conv_layers.parameters())


def test_best_rq_targets_a_wav2vec2_context_at_its_frame_rate():
    """hubert.mini pre-trained by BEST-RQ (drop its max_steps 0): targets are the waveform
    stacked over the whole encoder's 320 samples, one per output frame."""
    from scpc import config as cfg
    from scpc.train.model import PretrainModel

    conf = yaml.safe_load((ROOT / "conf" / "model.hubert.mini.yaml").read_text())
    conf["training"]["best_rq_loss"] = {"codebook_size": 32, "mask_prob": 0.2, "mask_width": 2}
    model = PretrainModel(cfg.merge(cfg.DEFAULTS, conf, "test"), 1)
    assert model.objective.factor == 320
    torch.manual_seed(0)
    out = model(torch.randn(2, 16000, 1), torch.tensor([16000, 12000]))
    assert torch.isfinite(out["loss"]) and 0 <= float(out["accuracy"]) <= 1
    with pytest.raises(ScpcError, match="max_steps is 0: nothing to train"):
        from scpc.train.loop import Trainer

        Trainer(cfg.merge(cfg.DEFAULTS, yaml.safe_load(
            (ROOT / "conf" / "model.hubert.mini.yaml").read_text()), "test"), ".", ".", ".")  # fmt: skip


@pytest.mark.slow
def test_spin_continues_a_checkpoint_and_logs_pnmi(tmp_path, mini_data):
    from scpc.models.checkpoint import load_inference_checkpoint

    raw, dirs = mini_feat_dirs(mini_data, tmp_path, "raw-norm")
    up = tmp_path / "up.ckpt"
    upstream = {"name": "up", "feat_type": "raw-norm", "conv": {"output_size": 16},
                "recur": {"output_size": 16, "recurrent_type": "lstm"}}  # fmt: skip
    (tmp_path / "up.yaml").write_text(yaml.safe_dump(upstream))
    run_script(".venv/bin/scpc-init", "model", tmp_path / "up.yaml", up)
    conf = yaml.safe_load((ROOT / "conf" / "model.spin.mini.yaml").read_text())
    conf["frontend"] = raw
    conf["training"].update(max_epochs=1, max_steps=2, batch_size=4)
    conf["training"]["spin_loss"].update(init_checkpoint=str(up), codebook_size=8)
    exp = train_tiny(tmp_path, conf, dirs)
    before = load_inference_checkpoint(up)
    after = load_inference_checkpoint(exp / "best.ckpt")
    assert after.encoder.to_json() == before.encoder.to_json()
    b, a = before.encoder.encoders, after.encoder.encoders
    for p, q in zip(b[0].parameters(), a[0].parameters()):
        assert torch.equal(p, q)  # the frozen conv encoder
    assert any(not torch.equal(p, q) for p, q in zip(b[1].parameters(), a[1].parameters()))
    assert " PNMI 0." in (exp / "train.log").read_text()
