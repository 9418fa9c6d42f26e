"""TERA / Mockingjay / AALBERT: each alteration's statistics and invariants, the loss against
a direct computation, and a tiny model trained and extracted through scpc-train."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import ROOT, mini_feat_dirs, train_tiny

from scpc.errors import ScpcError
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.objectives.reconstruction import ReconstructionLoss, freq_alteration, time_alteration


def runs(mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D bool tensor."""
    out, n = [], 0
    for v in mask.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_time_alteration_blocks_policy_and_padding():
    g = torch.Generator().manual_seed(0)
    n_utt, t, c = 3000, 120, 4
    x = torch.randn(n_utt, t, c) + 5  # no frame is zero
    lens = torch.full((n_utt,), 100)
    lens[::2] = 80
    out, frames = time_alteration(x, lens, 0.15, 7, (0.8, 0.1, 0.1), g)
    policies = {"zero": 0, "random": 0, "kept": 0}
    for i in range(n_utt):
        n = int(lens[i])
        f = frames[i]
        assert not f[n:].any() and torch.equal(out[i, n:], x[i, n:])  # padding untouched
        assert 7 <= int(f.sum()) <= round(n * 0.15 / 7) * 7  # 2 (80) or 2 (100) blocks, may overlap
        assert all(r >= 7 for r in runs(f))  # whole blocks
        assert torch.equal(out[i, ~f], x[i, ~f])  # only the blocks change
        a = out[i, f]
        if (a == 0).all():
            policies["zero"] += 1
        elif torch.equal(a, x[i, f]):
            policies["kept"] += 1
        else:  # frames copied from elsewhere in the same utterance
            assert all((x[i, :n] == row).all(1).any() for row in a)
            policies["random"] += 1
    assert abs(policies["zero"] / n_utt - 0.8) < 0.03
    assert (
        abs(policies["random"] / n_utt - 0.1) < 0.02 and abs(policies["kept"] / n_utt - 0.1) < 0.02
    )


def test_time_alteration_proportion_of_long_utterances():
    g = torch.Generator().manual_seed(1)
    x, lens = torch.randn(200, 1000, 2), torch.full((200,), 1000)
    _, frames = time_alteration(x, lens, 0.15, 7, (1.0, 0.0, 0.0), g)
    # 21 blocks of 7 = 14.7 % of the frames before overlaps; overlaps take a little off
    assert 0.12 < frames.float().mean() < 0.147


def test_freq_alteration_zeroes_one_band_up_to_the_limit():
    g = torch.Generator().manual_seed(0)
    x, lens = torch.randn(2000, 10, 80) + 5, torch.full((2000,), 10)
    out, band = freq_alteration(x, lens, 0.2, g)
    widths = band.sum(1)
    assert widths.max() == 16 and widths.min() == 0
    assert abs(widths.float().mean() - 8) < 0.3  # uniform over 0..16
    for i in range(0, 2000, 97):
        assert len(runs(band[i])) <= 1  # one contiguous band
        assert (out[i][:, band[i]] == 0).all() and torch.equal(
            out[i][:, ~band[i]], x[i][:, ~band[i]]
        )


def test_alter_marks_time_and_band_cells_of_real_frames_and_noise_only_adds():
    loss = ReconstructionLoss(6, 8, 0.3, 3, (1.0, 0.0, 0.0), 0.5, noise_prob=0.0)
    x, lens = torch.randn(4, 20, 6) + 3, torch.tensor([20, 15, 9, 4])
    altered, cells = loss.alter(x, lens, torch.Generator().manual_seed(3))
    for i, n in enumerate(lens.tolist()):
        assert not cells[i, n:].any()
        changed = altered[i, :n] != x[i, :n]
        assert torch.equal(changed, cells[i, :n])  # zeroed exactly where marked
    noisy = ReconstructionLoss(6, 8, 0.0, 3, freq_mask_max=0.5, noise_prob=1.0, noise_std=0.2)
    g = torch.Generator().manual_seed(4)
    y, cells = noisy.alter(torch.zeros(64, 50, 6), torch.full((64,), 40), g)
    band = cells.any(1)  # the noise marks nothing: only the band's cells
    assert torch.equal(
        cells, band[:, None, :].expand(-1, 50, -1) & (torch.arange(50) < 40)[None, :, None]
    )
    assert (y[:, 40:] == 0).all() and abs(y[:, :40][~cells[:, :40]].std() - 0.2) < 0.01


def test_loss_and_explained_fraction_match_a_direct_computation():
    torch.manual_seed(0)
    for kind in ("l1", "mse"):
        obj = ReconstructionLoss(5, 8, loss=kind)
        target, context = torch.randn(3, 12, 5), torch.randn(3, 12, 8)
        cells = torch.rand(3, 12, 5) < 0.3
        out = obj(target, context, cells)
        pred = obj.head(context)
        d = (pred - target)[cells].abs()
        r = target[cells].abs()
        if kind == "mse":
            d, r = d**2, r**2
        torch.testing.assert_close(out.loss, d.mean())
        torch.testing.assert_close(out.accuracy, 1 - d.sum() / r.sum())
        torch.testing.assert_close(out.altered_fraction, cells.float().mean())
    zero = obj(target, context, torch.zeros_like(cells))
    assert zero.loss == 0 and zero.loss.requires_grad


def test_bad_reconstruction_settings_are_clear_errors():
    with pytest.raises(ScpcError, match="3 probabilities"):
        ReconstructionLoss(5, 8, time_mask_policy=(0.5, 0.5))
    with pytest.raises(ScpcError, match="nothing to learn"):
        ReconstructionLoss(5, 8, time_mask_proportion=0.0, freq_mask_max=0.0)


@pytest.mark.parametrize(
    "family", ["tera"]
)  # aalbert differs only in sa.share_layers (unit-tested)
@pytest.mark.slow
def test_family_trains_and_its_checkpoint_extracts(tmp_path, mini_data, family):
    fbank, dirs = mini_feat_dirs(mini_data, tmp_path, "fbank-80")
    conf = yaml.safe_load((ROOT / "conf" / f"model.{family}.mini.yaml").read_text())
    conf["frontend"] = fbank
    conf["ff"]["output_size"] = 16
    conf["sa"].update(num_heads=2, dim_feedforward=32)
    conf["training"].update(max_epochs=1)
    model = load_inference_checkpoint(train_tiny(tmp_path, conf, dirs) / "best.ckpt")
    names = [e["name"] for e in model.encoder.to_json()["args"]["encoders"]]
    assert names == ["cmvn", "ff", "sa"] and model.downsampling_factor == 160
    wav = torch.randn(1, 16000) * 0.1
    out = model(wav, torch.tensor([16000]))
    layers = conf["sa"]["num_layers"]
    assert out.output.shape == (1, (16000 + 80) // 160, 16) and len(out.hidden_states) == 1 + layers
    # CMVN is inside the encoder: a louder copy of the input gives the same representation
    torch.testing.assert_close(
        model(wav * 3, torch.tensor([16000])).output, out.output, atol=2e-3, rtol=0
    )


@pytest.mark.parametrize("eps", [1e-5, 1e-12])
def test_l1_loss_equals_s3prls_spec_head_and_l1_for_the_same_alteration(eps):
    """s3prl's TransformerForMaskedAcousticModel: SpecHead(context), then
    L1Loss(pred.masked_select(mask_label), target.masked_select(mask_label)). scpc's head
    LayerNorm has torch's eps 1e-5; s3prl's configs use 1e-12 (a 1e-6-level difference)."""
    from original_code import s3prl_module

    model_py = s3prl_module("upstream.mockingjay.model")
    config = model_py.TransformerConfig(
        {
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "hidden_act": "gelu",
            "intermediate_size": 48,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "initializer_range": 0.02,
            "layer_norm_eps": eps,
            "share_layer": False,
            "pre_layer_norm": False,
        }
    )
    torch.manual_seed(0)
    head = model_py.TransformerSpecPredictionHead(config, 10)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    context, target = torch.randn(3, 20, 24), torch.randn(3, 20, 10)
    cells = torch.rand(3, 20, 10) < 0.3
    theirs = torch.nn.L1Loss()(head(context)[0].masked_select(cells), target.masked_select(cells))
    ours = ReconstructionLoss(10, 24)
    with torch.no_grad():
        for i, name in ((0, "dense"), (2, "LayerNorm"), (3, "output")):
            ours.head[i].weight.copy_(getattr(head, name).weight)
            ours.head[i].bias.copy_(getattr(head, name).bias)
        value = ours(target, context, cells).loss
    print(f"tera l1 (s3prl eps {eps}): ours {float(value):.8f} s3prl {float(theirs.detach()):.8f}")
    assert abs(float(value) - float(theirs.detach())) <= (1e-6 if eps == 1e-5 else 1e-4)
