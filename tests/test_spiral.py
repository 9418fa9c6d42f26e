"""SPIRAL: the EMA schedule and update, the student's masks, the teacher's position
randomisation and its alignment, in-utterance negatives, the loss against a direct
computation, noise mixing at a set SNR, and a tiny model trained through scpc-train."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import ROOT, mini_feat_dirs, train_tiny

from scpc.models import EncoderSequence, FeedForwardEncoder
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.models.spiral import SpiralEncoder
from scpc.objectives.spiral import (
    NoiseBank,
    SpiralLoss,
    contrastive_loss,
    ema_momentum,
    in_utterance_negatives,
    span_starts,
)


def test_ema_momentum_follows_a_half_cosine():
    assert ema_momentum(0, 100, 0.995, 1.0) == 0.995
    assert ema_momentum(100, 100, 0.995, 1.0) == 1.0
    assert ema_momentum(50, 100, 0.99, 0.999) == pytest.approx(0.9945)
    assert ema_momentum(25, 100, 0.0, 1.0) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    ms = [ema_momentum(s, 100, 0.9, 1.0) for s in range(0, 101, 5)]
    assert ms == sorted(ms) and ema_momentum(500, 100, 0.9, 1.0) == 1.0


def test_teacher_update_is_the_moving_average_of_the_student():
    torch.manual_seed(0)
    student = EncoderSequence(FeedForwardEncoder(4, 6))
    loss = SpiralLoss(student, 4, projection_size=3)
    teacher_before = [p.clone() for p in loss.teacher.parameters()]
    for p in student.parameters():
        p.data.add_(1.0)  # the student moves; the teacher has not yet
    m = loss.update_teacher(student, 30, 100)
    assert m == pytest.approx(ema_momentum(30, 100, 0.995, 1.0))
    for t, t0, s in zip(loss.teacher.parameters(), teacher_before, student.parameters()):
        torch.testing.assert_close(t, m * t0 + (1 - m) * s)
        assert not t.requires_grad


def test_time_spans_cover_about_the_mask_probability():
    g = torch.Generator().manual_seed(0)
    counts = [len(span_starts(200, 20, 0.5, g)) for _ in range(4000)]
    assert abs(np.mean(counts) - 5.0) < 0.05  # int(0.5 * 200 / 20 + U[0, 1)) = 5
    assert len(span_starts(15, 20, 0.5, g)) == 0


def spiral_loss(**kw):
    torch.manual_seed(0)
    enc = SpiralEncoder(
        6, [{"convs": [[8, 5, 2], [8, 5, 2], [8, 1, 2]], "num_layers": 0, "num_heads": 2,
             "dim_feedforward": 8}], pos_conv_kernel=3, pos_conv_groups=2, dropout=0.0,
    )  # fmt: skip
    return SpiralLoss(EncoderSequence(enc), 6, projection_size=4, **kw), enc


def test_student_masks_spans_with_the_mask_vector_and_zeroes_channel_bands():
    loss, _ = spiral_loss(mask_length=4, channel_mask_length=2, channel_mask_prob=0.4)
    x, lens = torch.randn(50, 40, 6) + 3, torch.full((50,), 40)
    lens[:10] = 30
    y = loss.student_input(x, lens, torch.Generator().manual_seed(1))
    assert (y[:10, 30:] == 0).all()
    zero_cols = (y[:, :30] == 0).all(1)  # channel bands: zero at every frame
    assert zero_cols.any() and zero_cols.sum(1).max() <= 6
    for i in range(50):
        keep = ~zero_cols[i]
        rows = y[i, : int(lens[i])][:, keep]
        masked = (rows == loss.mask_vector[keep]).all(1)
        assert masked.any() and torch.equal(rows[~masked], x[i, : int(lens[i])][~masked][:, keep])


def test_teacher_padding_and_its_trimmed_output_line_up_with_the_student():
    loss, enc = spiral_loss(max_shift=3, max_shift_ratio=1.0)
    enc.eval()
    x, lens = torch.randn(2, 96, 6), torch.tensor([96, 80])
    seen = set()
    for seed in range(12):
        padded, plens, left = loss.teacher_input(x, lens, torch.Generator().manual_seed(seed))
        lp = left * 8
        right = (plens[0] - 96).item() - lp
        seen.add(left)
        assert 0 <= left <= 3 and right % 8 == 0 and 0 <= right <= 24
        assert (padded[:, :lp] == loss.mask_vector).all()
        assert torch.equal(padded[1, lp : lp + 80], x[1, :80])
        assert (padded[1, lp + 80 : lp + 80 + right] == loss.mask_vector).all()
        assert (padded[1, lp + 80 + right :] == 0).all()
        with torch.no_grad():
            plain = enc(x, lens).output
            shifted = enc(padded, plens).output[:, left : left + plain.shape[1]]
        # away from the ends (receptive field), the teacher sees the same frames
        torch.testing.assert_close(shifted[0, 2:-2], plain[0, 2:-2])
    assert len(seen) > 2


def test_negatives_are_other_frames_of_the_same_utterance():
    g = torch.Generator().manual_seed(0)
    lens = torch.tensor([5, 1, 3])
    own, neg = in_utterance_negatives(lens, 200, g)
    assert own.tolist() == [0, 1, 2, 3, 4, 10, 11, 12]  # b * T + t; the 1-frame one is left out
    for o, row in zip(own.tolist(), neg.tolist()):
        b, t = divmod(o, 5)
        assert all(r // 5 == b and r != o and r % 5 < lens[b] for r in row)
        assert len(set(row)) == lens[b] - 1  # every other frame is drawn


def test_contrastive_loss_matches_a_direct_computation():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    target[1, 3] = target[1, 0]  # a negative equal to the positive is ignored
    own = torch.tensor([0, 1, 2, 4, 5, 6, 7])
    neg = torch.tensor([[1, 2], [0, 3], [0, 1], [5, 7], [4, 6], [7, 5], [4, 6]])
    out = contrastive_loss(pred, target, own, neg, 0.3)
    p, y = pred.reshape(-1, 3), target.reshape(-1, 3)
    losses, right = [], 0
    for o, row in zip(own.tolist(), neg.tolist()):
        cands = [y[o]] + [y[r] for r in row if not torch.equal(y[r], y[o])]
        logits = torch.stack([torch.cosine_similarity(p[o], c, 0) for c in cands]) / 0.3
        losses.append(-torch.log_softmax(logits, 0)[0])
        right += int(logits.argmax() == 0)
    torch.testing.assert_close(out.loss, torch.stack(losses).mean())
    assert out.accuracy == pytest.approx(right / len(own))


def test_noise_is_mixed_at_the_drawn_snr(tmp_path):
    fbank = yaml.safe_load((ROOT / "conf" / "feats" / "fbank-80.json").read_text())
    rng = np.random.default_rng(0)
    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "noise" / "white.wav", rng.normal(0, 0.05, 8000).astype("float32"), 16000)
    bank = NoiseBank(tmp_path / "noise", fbank)
    speech = torch.randn(2, 120, 80) - 2  # log magnitudes
    lens = torch.tensor([120, 90])
    mixed = bank.mix(speech, lens, 1.0, (10.0, 10.0), torch.Generator().manual_seed(0))
    for i, n in enumerate(lens.tolist()):
        s = speech[i, :n].double().exp().square()
        added = mixed[i, :n].double().exp().square() - s
        assert 10 * math.log10(s.mean() / added.mean()) == pytest.approx(10.0, abs=1e-3)
        assert (added > 0).all()
    assert torch.equal(mixed[1, 90:], speech[1, 90:])
    unchanged = bank.mix(speech, lens, 0.0, (0.0, 30.0), torch.Generator())
    assert torch.equal(unchanged, speech)


@pytest.mark.slow
def test_spiral_trains_and_its_student_is_the_checkpoint(tmp_path, mini_data):
    fbank, dirs = mini_feat_dirs(mini_data, tmp_path, "fbank-80")
    conf = yaml.safe_load((ROOT / "conf" / "model.spiral.mini.yaml").read_text())
    conf["frontend"] = fbank
    conf["spiral"]["blocks"] = [
        {"convs": [[8, 5, 2], [8, 5, 2]], "num_layers": 1, "num_heads": 2, "dim_feedforward": 16},
        {"convs": [[16, 5, 2]], "num_layers": 1, "num_heads": 2, "dim_feedforward": 16},
    ]
    conf["training"].update(max_epochs=1)
    conf["training"]["spiral_loss"].update(projection_size=8, negatives=5)
    exp = train_tiny(tmp_path, conf, dirs)
    model = load_inference_checkpoint(exp / "best.ckpt")
    names = [e["name"] for e in model.encoder.to_json()["args"]["encoders"]]
    assert names == ["cmvn", "id", "spiral"] and model.downsampling_factor == 1280
    out = model(torch.randn(1, 32000) * 0.1, torch.tensor([32000]))
    assert (
        out.output.shape[2] == 16 and out.lens.item() == out.output.shape[1] == 25
    )  # 200 frames / 8
    state = torch.load(exp / "last.ckpt", weights_only=True)["model"]
    assert any(k.startswith("objective.teacher.") for k in state)  # the teacher resumes too
