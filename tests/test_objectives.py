"""CPC and BEST-RQ losses against straightforward loops; masking statistics."""

import math

import pytest
import torch

from scpc.errors import ScpcError
from scpc.objectives.bestrq import BestRqLoss, span_mask, stack_frames
from scpc.objectives.cpc import CpcLoss, sample_negatives


def reference_cpc(loss, z, c, lens, neg):
    """Loop over utterances, anchors and steps, exactly as the docstring of cpc.py says."""
    preds = loss.predictions(c, lens)
    N, T, C = z.shape
    flat = z.reshape(N * T, C)
    per_utt = []
    for n in range(N):
        terms = []
        for t in range(loss.offset, int(lens[n]) - loss.K):
            for j, k in enumerate(range(loss.G + 1, loss.K + 1)):
                p = preds[n, t, j]
                negs = flat[neg] if loss.negatives == "batch" else z[n, neg[n]]
                scores = torch.cat([(p * z[n, t + k]).sum().view(1), negs @ p])
                terms.append(torch.logsumexp(scores, 0) - scores[0])
        per_utt.append(torch.stack(terms).mean())
    return torch.stack(per_utt).mean()


@pytest.mark.parametrize("negatives", ["batch", "utterance"])
@pytest.mark.parametrize("predictor", ["ff", "recur", "csa"])
@pytest.mark.parametrize("offset, gutted", [(0, 0), (2, 1)])
def test_cpc_loss_matches_reference_loop(negatives, predictor, offset, gutted):
    torch.manual_seed(0)
    loss = CpcLoss(
        8,
        16,
        prediction_steps=4,
        gutted_steps=gutted,
        negative_samples=7,
        negatives=negatives,
        offset=offset,
        predictor=predictor,
    ).eval()
    z, c, lens = torch.randn(3, 25, 8), torch.randn(3, 25, 16), torch.tensor([25, 14, 19])
    got = loss(z, c, lens, generator=torch.Generator().manual_seed(5)).loss
    neg = sample_negatives(lens, 25, 7, negatives, offset, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, reference_cpc(loss, z, c, lens, neg))


@pytest.mark.parametrize("negatives", ["batch", "utterance"])
def test_negatives_are_real_frames_past_the_offset(negatives):
    lens = torch.tensor([10, 4, 7])
    neg = sample_negatives(
        lens, 10, 5000, negatives, offset=2, generator=torch.Generator().manual_seed(0)
    )
    if negatives == "batch":
        n, t = neg // 10, neg % 10
        assert (t >= 2).all() and (t < lens[n]).all()
        assert len(set(neg.tolist())) == 8 + 2 + 5  # every valid frame gets drawn
    else:
        assert (neg >= 2).all() and (neg < lens[:, None]).all()


def test_cpc_penalty_speakers_and_short_utterances():
    torch.manual_seed(0)
    z, c, lens = torch.randn(2, 20, 4), torch.randn(2, 20, 4), torch.tensor([20, 15])
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    plain = CpcLoss(4, 4, 3, negative_samples=5)
    penalised = CpcLoss(4, 4, 3, negative_samples=5, averaging_penalty=2.0)
    penalised.load_state_dict(plain.state_dict())
    mean_z = torch.stack([z[0].mean(0), z[1, :15].mean(0)])
    torch.testing.assert_close(
        penalised(z, c, lens, generator=g()).loss,
        plain(z, c, lens, generator=g()).loss + 2.0 * (mean_z**2).mean(),
    )
    with_spk = CpcLoss(4, 4, 3, negative_samples=5, num_speakers=3)
    with pytest.raises(ScpcError, match="pass speaker ids"):
        with_spk(z, c, lens)
    assert with_spk(z, c, lens, speakers=torch.tensor([0, 2])).loss.isfinite()
    with pytest.raises(ScpcError, match="more than offset"):
        plain(z, c, torch.tensor([20, 3]))


def test_cpc_learns_a_predictable_sequence():
    """A context that is the future latent makes the task easy: the loss must fall well below log(M+1)."""
    torch.manual_seed(0)
    z = torch.randn(4, 40, 8)
    c = torch.roll(z, -1, 1)  # c[t] = z[t+1]
    loss = CpcLoss(8, 8, prediction_steps=1, negative_samples=15)
    opt = torch.optim.Adam(loss.parameters(), 0.05)
    for _ in range(100):
        opt.zero_grad()
        out = loss(z, c, torch.full((4,), 40))
        out.loss.backward()
        opt.step()
    assert out.loss.item() < 0.3 * math.log(16) and out.accuracy > 0.7


def test_span_mask_statistics():
    g = torch.Generator().manual_seed(0)
    lens = torch.tensor([20000, 12000])
    m = span_mask(lens, 20000, prob=0.01, width=10, generator=g)
    assert not m[1, 12000:].any()
    expected = 1 - (1 - 0.01) ** 10
    assert abs(m[0].float().mean().item() - expected) < 0.01
    # every run of masked frames is at least one span long (except where the utterance ends)
    runs, run = [], 0
    for v in m[0, :19990].tolist() + [False]:
        if v:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    assert min(runs) >= 10


def test_bestrq_loss_matches_reference_computation():
    torch.manual_seed(0)
    loss = BestRqLoss(
        feat_size=5,
        context_size=6,
        downsampling_factor=2,
        codebook_size=32,
        codebook_dim=4,
        mask_prob=0.2,
        mask_width=3,
    )
    feats, lens = torch.randn(2, 41, 5), torch.tensor([41, 30])
    masked, m = loss.mask(feats, lens, torch.Generator().manual_seed(3))
    assert m.shape == (2, 20) and not m[1, 15:].any()
    # masked frames are replaced (both frames of a stacked pair), others untouched
    full = m.repeat_interleave(2, 1)
    assert torch.equal(masked[:, :40][~full], feats[:, :40][~full])
    assert not torch.isclose(masked[:, :40][full], feats[:, :40][full]).any()
    context = torch.randn(2, 20, 6)
    clens = torch.tensor([20, 15])
    out = loss(feats, context, m, clens)
    q = loss.quantizer
    terms = []
    for n in range(2):
        real = feats[n, : 2 * clens[n]]  # targets come from per-utterance standardised features
        std = (feats[n] - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + 1e-5)
        for t in range(20):
            if m[n, t]:
                x = torch.cat([std[2 * t], std[2 * t + 1]])
                y = torch.nn.functional.normalize(x @ q.projection, dim=0)
                target = min(range(32), key=lambda j: float(((y - q.codebook[j]) ** 2).sum()))
                logits = loss.head(context[n, t])
                terms.append(torch.logsumexp(logits, 0) - logits[target])
    torch.testing.assert_close(out.loss, torch.stack(terms).mean())
    assert stack_frames(feats, 2).shape == (2, 20, 10)


def test_bestrq_quantizer_is_fixed_by_its_seed():
    a, b = BestRqLoss(5, 6, seed=3), BestRqLoss(5, 6, seed=3)
    assert torch.equal(a.quantizer.codebook, b.quantizer.codebook)
    assert not any(p.requires_grad for p in a.quantizer.buffers())
    assert {n for n, _ in a.named_parameters()} == {"head.weight", "head.bias"}
