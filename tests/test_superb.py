"""SUPERB core: upstream and featurizer, PR/ASR/phone-probe targets and heads, SpecAugment,
the trainer (dev-best, results, resumption) and the config; fast unit tests."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ROOT
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from scpc import config as model_config
from scpc.cli.init import main as init_main
from scpc.data.datadir import copy_filtered, select_utterances
from scpc.downstream.config import load_config
from scpc.downstream.data import FeatureCache, pad_hidden, upstream_key
from scpc.downstream.probe import load_probe_file
from scpc.downstream.task import Example
from scpc.downstream.tasks import TASKS, make_task, task_class
from scpc.downstream.tasks.asr import SpeechRecognition
from scpc.downstream.tasks.phone_frame import IGNORE, context_frames, frame_labels
from scpc.downstream.tasks.pr import (
    PhoneRecognition,
    collapse_alignment,
    read_lexicon,
    text_to_phones,
)
from scpc.downstream.trainer import SuperbTrainer
from scpc.downstream.upstream import Featurizer, Upstream, select_layers
from scpc.errors import ScpcError, StoppedBySignal
from scpc.frontend import load_frontend_config
from scpc.io import save_torch
from scpc.masks import utterance_cmvn
from scpc.models.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from scpc.nn.ctc import BiLSTM, reverse_padded
from scpc.nn.specaug import SpecAugment
from scpc.train.model import PretrainModel

TINY_MODEL = {
    "name": "tiny",
    "feat_type": "fbank-41",
    "latent_type": "ff",
    "context_type": "recur",
    "ff": {"output_size": 12},
    "recur": {"output_size": 12, "num_layers": 1, "recurrent_type": "gru"},
}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A random-init model with two 12-channel layers (ff latent, GRU context) on fbank-41."""
    cfg = model_config.merge(model_config.DEFAULTS, TINY_MODEL, "test")
    fe = load_frontend_config(ROOT / "conf" / "feats" / "fbank-41.json")
    torch.manual_seed(0)
    model = PretrainModel(cfg, 41)
    path = tmp_path_factory.mktemp("up") / "tiny.ckpt"
    save_inference_checkpoint(path, model.encoder(), fe, {"name": "tiny"})
    return path


# ---------------------------------------------------------------------------- featurizer


def test_weighted_sum_starts_uniform_equals_the_mean_of_layers_and_learns():
    torch.manual_seed(0)
    hidden = torch.randn(2, 3, 5, 4)  # (B, L, T, C)
    f = Featurizer(3)
    assert f.layer_weights() == pytest.approx([1 / 3] * 3)
    out = f(hidden)
    torch.testing.assert_close(out, hidden.mean(1))
    (out * torch.arange(4.0)).sum().backward()
    assert f.weights.grad is not None and f.weights.grad.abs().sum() > 0


def test_weighted_sum_covers_the_layers_of_the_last_layers_size():
    assert select_layers([512, 256, 256], None) == [1, 2]
    assert select_layers([256, 256], None) == [0, 1]
    assert select_layers([512, 256, 256], 0) == [0]
    assert select_layers([512, 256, 256], -1) == [2]
    with pytest.raises(ScpcError, match="--layer 3: the upstream has 3 layers"):
        select_layers([512, 256, 256], 3)


def test_layer_option_probes_that_hidden_state(tiny_ckpt):
    model = load_inference_checkpoint(tiny_ckpt)
    wav = torch.randn(1, 8000) * 0.1
    want = model(wav, torch.tensor([8000])).hidden_states
    assert len(want) == 2
    for layer in (0, 1):
        up = Upstream(load_inference_checkpoint(tiny_ckpt), select_layers([12, 12], layer))
        hidden, lens = up.encode([wav[0].numpy()], "cpu")
        out = Featurizer(1)(hidden)
        torch.testing.assert_close(out[0, : lens[0]], want[layer][0, : lens[0]])


def test_frozen_upstream_gets_no_gradient_and_a_finetuned_one_does(tiny_ckpt):
    wav = [np.random.default_rng(0).standard_normal(4000).astype(np.float32) * 0.1]
    frozen = Upstream(load_inference_checkpoint(tiny_ckpt), [0, 1])
    frozen.train()
    assert not frozen.model.training
    hidden, _ = frozen.encode(wav, "cpu")
    assert not hidden.requires_grad
    assert not any(p.requires_grad for p in frozen.parameters())
    tuned = Upstream(load_inference_checkpoint(tiny_ckpt), [0, 1], finetune=True)
    tuned.train()
    hidden, _ = tuned.encode(wav, "cpu")
    Featurizer(2)(hidden).sum().backward()
    grads = [p.grad for p in tuned.parameters()]
    assert grads and all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_utterance_cmvn_standardises_valid_frames_and_keeps_padding_zero():
    x = torch.tensor([[[1.0], [3.0], [9.0]], [[2.0], [4.0], [0.0]]])
    out = utterance_cmvn(x, torch.tensor([3, 2]))
    torch.testing.assert_close(out[1, :, 0], torch.tensor([-1.0, 1.0, 0.0]), atol=1e-4, rtol=0)
    assert abs(float(out[0].mean())) < 1e-6


# ---------------------------------------------------------------------------- PR targets


def test_pr_targets_merge_runs_and_drop_silence():
    frames = [0, 0, 5, 5, 0, 5, 3, 3, 3, 0, 0, 7]
    assert collapse_alignment(frames) == [5, 5, 3, 7]
    assert collapse_alignment([0, 0]) == []


def write_wav(path, seconds):
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000)


def make_dir(d, utts: dict[str, tuple[float, str, list[int]]], phones=("SIL", "AA", "B", "K")):
    """A data dir: utt -> (seconds, text, 10 ms alignment)."""
    d.mkdir(parents=True)
    lines = {n: [] for n in ("wav.scp", "text", "utt2spk", "spk2utt", "ali.txt")}
    for utt, (sec, text, ali) in sorted(utts.items()):
        write_wav(d / f"{utt}.wav", sec)
        lines["wav.scp"].append(f"{utt} {d / (utt + '.wav')}")
        lines["text"].append(f"{utt} {text}")
        lines["utt2spk"].append(f"{utt} s1")
        lines["ali.txt"].append(f"{utt} " + " ".join(map(str, ali)))
    lines["spk2utt"].append("s1 " + " ".join(sorted(utts)))
    for name, rows in lines.items():
        (d / name).write_text("".join(r + "\n" for r in rows))
    (d / "phones.txt").write_text("".join(f"{p} {i}\n" for i, p in enumerate(phones)))


def test_pr_loads_alignment_targets_with_a_vocabulary_without_silence(tmp_path):
    utts = {"s1-a": (0.05, "A", [0, 1, 1, 2, 0]), "s1-b": (0.04, "B", [3, 3, 0, 3])}
    for split in ("train", "dev", "test"):
        make_dir(tmp_path / split, utts)
    task = PhoneRecognition()
    out = task.load({s: str(tmp_path / s) for s in ("train", "dev", "test")}, task.defaults)
    assert task.tokens == ["<blank>", "AA", "B", "K"]
    assert [ex.target for ex in out["dev"]] == [[1, 2], [3, 3]]


def test_lexicon_lookup_strips_stress_on_request_and_oov_names_the_word(tmp_path):
    lex = tmp_path / "lexicon.txt"
    lex.write_text("CAT\tK AE1 T\nCAT\tK AA1 T\nTHE  DH AH0\n")
    assert read_lexicon(lex)["CAT"] == ["K", "AE1", "T"]  # the first pronunciation
    assert read_lexicon(lex, strip_stress=True)["THE"] == ["DH", "AH"]
    d = tmp_path / "d"
    make_dir(d, {"s1-a": (0.05, "THE CAT", [0] * 5), "s1-b": (0.05, "THE DOG", [0] * 5)})
    text = (d / "text").read_text().splitlines()
    (d / "text").write_text(text[0] + "\n")
    assert text_to_phones(d, read_lexicon(lex), lex)["s1-a"] == ["DH", "AH0", "K", "AE1", "T"]
    (d / "text").write_text("\n".join(text) + "\n")
    with pytest.raises(ScpcError) as e:
        text_to_phones(d, read_lexicon(lex), lex)
    assert str(e.value) == f"{lex}: no pronunciation of 'DOG' ({d / 'text'}:2)"


def test_pr_with_a_lexicon_keeps_stress_by_default(tmp_path):
    lex = tmp_path / "lexicon.txt"
    lex.write_text("A AH0\nB B IY1\n")
    for split in ("train", "dev", "test"):
        make_dir(tmp_path / split, {"s1-a": (0.05, "A B", [0] * 5)})
    task = PhoneRecognition()
    cfg = dict(task.defaults, lexicon=str(lex))
    out = task.load({s: str(tmp_path / s) for s in ("train", "dev", "test")}, cfg)
    assert task.tokens == ["<blank>", "AH0", "B", "IY1"]
    assert out["test"][0].target == [1, 2, 3]


# ---------------------------------------------------------------------------- frame probes


def test_frame_labels_follow_frame_centres_at_other_rates():
    ali = [10, 11, 12, 13, 14, 15]
    assert frame_labels(ali, 6, 160) == ali
    assert frame_labels(ali, 3, 320) == [11, 13, 15]  # centre of [320j, 320j+320) is in 2j+1
    assert frame_labels(ali, 5, 80) == [10, 10, 11, 11, 12]
    assert frame_labels(ali, 2, 480) == [11, 14]  # centres at 240 and 720 samples
    assert frame_labels(ali, 8, 160) == ali + [IGNORE, IGNORE]  # past the alignment


def test_concatenated_context_repeats_edge_frames_within_each_utterance():
    x = torch.tensor([[[1.0], [2.0], [3.0]], [[4.0], [5.0], [0.0]]])
    out = context_frames(x, torch.tensor([3, 2]), 1)
    assert out[0].tolist() == [[1, 1, 2], [1, 2, 3], [2, 3, 3]]
    assert out[1, :2].tolist() == [[4, 4, 5], [4, 5, 5]]


# ---------------------------------------------------------------------------- ASR


def test_bilstm_on_padded_batches_equals_a_packed_bidirectional_lstm():
    torch.manual_seed(0)
    ours = BiLSTM(3, 4)
    ref = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            src = ours.backward_lstm if name.endswith("_reverse") else ours.forward_lstm
            p.copy_(getattr(src, name.removesuffix("_reverse")))
    x, lens = torch.randn(3, 7, 3), torch.tensor([7, 4, 1])
    got = ours(x, lens)
    want, _ = pad_packed_sequence(
        ref(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))[0],
        batch_first=True,
    )
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(got[b, :n], want[b, :n])
    assert reverse_padded(torch.arange(4.0)[None, :, None], torch.tensor([3]))[
        0, :, 0
    ].tolist() == [
        2,
        1,
        0,
        3,
    ]


def test_asr_characters_with_a_word_delimiter_and_words_back(tmp_path):
    for split, text in (("train", "THE CAT'S"), ("dev", "A CAT"), ("test", "THE  CAT")):
        make_dir(tmp_path / split, {"s1-a": (0.05, text, [0] * 5)})
    task = SpeechRecognition()
    out = task.load({s: str(tmp_path / s) for s in ("train", "dev", "test")}, task.defaults)
    assert task.tokens == ["<blank>", "|", "'", "A", "C", "E", "H", "S", "T"]
    assert "".join(task.tokens[i] for i in out["train"][0].target) == "THE|CAT'S"
    assert task.text(out["test"][0].target) == "THE CAT"
    # one-hot log-probabilities spelling T T H E | C A - T (a repeat, a blank between the Ts)
    ids = [8, 8, 6, 5, 1, 4, 3, 0, 8]
    lp = torch.full((len(ids), len(task.tokens)), -30.0)
    lp[torch.arange(len(ids)), torch.tensor(ids)] = 0.0
    scores = task.score("test", out["test"], [lp])
    assert scores == {"wer": 0.0, "cer": 0.0, "wer_beam": 0.0}
    assert task.score("dev", out["dev"], [lp]) == {"wer": 50.0, "cer": 60.0}  # no beam on dev


# ---------------------------------------------------------------------------- SpecAugment


def test_specaugment_masks_counts_and_widths_and_does_nothing_in_eval():
    aug = SpecAugment(
        time_warp_window=0,
        num_time_mask=1,
        time_mask_width=(7, 8),
        num_freq_mask=2,
        freq_mask_width=(3, 4),
    )
    x = torch.ones(2, 50, 30)
    lens = torch.tensor([50, 40])
    out = aug.train()(x, lens, torch.Generator().manual_seed(0))
    for b, n in enumerate(lens.tolist()):
        y = out[b, :n]
        dead_frames = int((y == 0).all(1).sum())
        dead_channels = int((y == 0).all(0).sum())
        assert dead_frames == 7
        assert 3 <= dead_channels <= 6  # two bands of 3, which may overlap
        assert out[b, n:].abs().sum() == 0
    assert torch.equal(aug.eval()(x, lens), x)


def test_time_warp_keeps_lengths_and_the_ends():
    aug = SpecAugment(time_warp_window=5, num_time_mask=0, num_freq_mask=0)
    x = torch.arange(40.0).repeat(3, 1).T[None].contiguous()  # (1, 40, 3): frame index
    out = aug.train()(x, torch.tensor([40]), torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert float(out[0, 0, 0]) == pytest.approx(0, abs=0.5)
    assert float(out[0, -1, 0]) == pytest.approx(39, abs=0.5)
    assert (out[0, 1:, 0] >= out[0, :-1, 0] - 1e-4).all()  # still in time order


# ---------------------------------------------------------------------------- cache, registry


def test_disk_cache_round_trip_and_refuses_other_audio(tmp_path):
    cache = FeatureCache("disk", tmp_path, upstream_key("abc", [0, 1]), 0)
    ex = Example("u1", "/a.wav")
    h = torch.randn(2, 5, 3)
    cache.put(ex, h)
    torch.testing.assert_close(cache.get(ex), h.half())
    assert cache.get(Example("u1", "/b.wav")) is None
    assert upstream_key("abc", [0, 1]) != upstream_key("abc", [1])
    hidden, lens = pad_hidden([torch.ones(2, 3, 4), torch.ones(2, 1, 4)])
    assert hidden.shape == (2, 2, 3, 4) and lens.tolist() == [3, 1]
    assert hidden[1, :, 1:].abs().sum() == 0


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_cache_keeps_values_beyond_the_float16_range_exact(tmp_path, mode):
    cache = FeatureCache(mode, tmp_path, "k", 0)
    big = torch.tensor([[[1.0e5, -3.25]]])
    cache.put(Example("u", "/a.wav"), big)
    assert torch.equal(cache.get(Example("u", "/a.wav")), big)


def test_registry_names_my_tasks_and_rejects_unknown_ones():
    for name in ("pr", "asr", "phone_linear", "phone_1hidden", "phone_concat"):
        assert task_class(name).name == name
    assert {"ks", "sid", "asv", "spk_frame", "spk_utt"} <= set(TASKS)
    with pytest.raises(ScpcError, match="unknown task 'nope'"):
        make_task("nope")


def test_config_unknown_key_and_bad_choice_are_errors_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lrr: 0.1}\n")
    with pytest.raises(ScpcError, match=f"{bad}: unknown config key train.lrr"):
        load_config(bad, make_task("pr"))
    bad.write_text("task: {project_dimm: 3}\n")
    with pytest.raises(ScpcError, match="unknown config key task.project_dimm"):
        load_config(bad, make_task("pr"))
    bad.write_text("train: {optimizer: adagrad}\n")
    with pytest.raises(ScpcError, match="train.optimizer must be one of"):
        load_config(bad, make_task("pr"))
    bad.write_text("train: {learning_rate: 1e-3}\n")  # YAML 1.1 reads this as a string
    assert load_config(bad, make_task("pr"))["train"]["learning_rate"] == 0.001
    overrides = {"train.learning_rate": 0.5}
    cfg = load_config(ROOT / "conf" / "superb.pr.yaml", make_task("pr"), overrides)
    assert cfg["train"]["learning_rate"] == 0.5 and cfg["train"]["accumulate_grad_batches"] == 2


def test_config_old_key_names_are_read_with_a_notice(tmp_path, capsys):
    """Configs frozen before the keys took the names every trainer uses still load."""
    old = tmp_path / "old.yaml"
    old.write_text("train: {lr: 0.02, clip: 5.0, accumulate: 3, eval_every: 7, save_every: 9}\n")
    cfg = load_config(old, make_task("pr"), {"train.log_every": 4})
    t = cfg["train"]
    assert (t["learning_rate"], t["grad_clip_norm"], t["accumulate_grad_batches"]) == (0.02, 5.0, 3)
    assert (t["eval_every_steps"], t["checkpoint_every_steps"], t["log_every_steps"]) == (7, 9, 4)
    assert not {"lr", "clip", "accumulate", "eval_every", "save_every", "log_every"} & set(t)
    err = capsys.readouterr().err.splitlines()
    assert f"{old}: train.lr is deprecated; it is read as train.learning_rate" in err
    assert len([line for line in err if "train.clip is deprecated" in line]) == 1
    both = tmp_path / "both.yaml"
    both.write_text("train: {lr: 0.02, learning_rate: 0.01}\n")
    with pytest.raises(ScpcError, match="train.lr and train.learning_rate are one key"):
        load_config(both, make_task("pr"))


# ---------------------------------------------------------------------------- the trainer


@pytest.fixture(scope="module")
def small_data(mini_data, tmp_path_factory):
    """8 training, 4 dev and 4 test utterances of the mini corpus (the shortest)."""
    root = tmp_path_factory.mktemp("small")
    for split, n in (("train", 8), ("dev", 4), ("test", 4)):
        utts = select_utterances(mini_data / split, "shortest", n)
        copy_filtered(mini_data / split, root / split, utts)
    return root


@pytest.fixture(scope="module")
def fbank41(tmp_path_factory):
    path = tmp_path_factory.mktemp("fb") / "fbank41.ckpt"
    init_main(["frontend", str(ROOT / "conf" / "feats" / "fbank-41.json"), str(path)])
    return path


def small_config(tmp_path, data, task="phone_linear", **train):
    t = {
        "learning_rate": 0.01,
        "batch_size": 4,
        "max_steps": 6,
        "eval_every_steps": 2,
        "log_every_steps": 1,
        "checkpoint_every_steps": 1,
        "eval_batch_size": 2,
        **train,
    }
    cfg = {"data": {s: str(data / s) for s in ("train", "dev", "test")}, "train": t}
    path = tmp_path / f"{task}.yaml"
    path.write_text(json.dumps(cfg))
    return path


def trainer(cfg_path, upstream, out, task="phone_linear", **overrides):
    t = make_task(task)
    return SuperbTrainer(t, load_config(cfg_path, t, overrides), upstream, out, quiet=True)


def test_trainer_keeps_the_dev_best_head_and_writes_results(tmp_path, small_data, fbank41):
    out = tmp_path / "run"
    results = trainer(small_config(tmp_path, small_data), fbank41, out).fit()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "split,step,epoch,loss,accuracy,lr"
    dev = [r.split(",") for r in rows if r.startswith("dev,")]
    assert [int(r[1]) for r in dev] == [2, 4, 6]
    accs = [float(r[4]) for r in dev]
    best = max(range(3), key=lambda i: (accs[i], -i))  # the first best: ties keep the old one
    assert results["best_step"] == int(dev[best][1])
    assert results["dev"]["accuracy"] == pytest.approx(accs[best], abs=1e-4)
    assert load_probe_file(out / "dev-best.ckpt")["step"] == results["best_step"]
    saved = json.loads((out / "results.json").read_text())
    assert saved == results
    assert saved["task"] == "phone_linear" and saved["metric"] == "accuracy"
    assert saved["value"] == saved["test"]["accuracy"] and 0 <= saved["value"] <= 100
    assert saved["layer_weights"] == [1.0] and saved["steps"] == 6 and saved["finetune"] is False
    for f in ("curves.png", "train.log", "last.ckpt", "config.yaml"):
        assert (out / f).is_file(), f


def test_bf16_autocast_trains_a_probe_on_cpu(tmp_path, small_data, fbank41):
    """The AMP path runs in CI: bf16 autocast on CPU, the head kept in float32."""
    rows = {}
    for amp in ("off", "bf16"):
        (tmp_path / amp).mkdir()
        cfg = small_config(tmp_path / amp, small_data, max_steps=2, eval_every_steps=2, amp=amp)
        t = trainer(cfg, fbank41, tmp_path / amp / "run")
        t.fit()
        assert all(q.dtype == torch.float32 for q in t.probe.head.parameters())
        lines = (tmp_path / amp / "run" / "metrics.csv").read_text().splitlines()
        rows[amp] = [float(r.split(",")[3]) for r in lines if r.startswith("train,")]
    assert rows["bf16"][0] != rows["off"][0]
    assert rows["bf16"][0] == pytest.approx(rows["off"][0], rel=0.05)


@pytest.mark.slow
def test_resume_after_interruption_matches_the_uninterrupted_run(tmp_path, small_data, fbank41):
    cfg = small_config(tmp_path, small_data, "pr", accumulate_grad_batches=2, learning_rate=0.003)
    whole = trainer(cfg, fbank41, tmp_path / "whole", "pr").fit()
    first = trainer(cfg, fbank41, tmp_path / "split", "pr")
    assert first.fit(until=3) is None
    assert not (tmp_path / "split" / "results.json").exists()
    # as an older scpc saved it: old key names in its config, the best score beside the progress
    state = torch.load(tmp_path / "split" / "last.ckpt", weights_only=True)
    state["best"] = state["progress"].pop("best")
    for new, old in (
        ("upstream_learning_rate:", "upstream_lr:"),
        ("  learning_rate:", "  lr:"),
        ("accumulate_grad_batches:", "accumulate:"),
        ("grad_clip_norm:", "clip:"),
        ("checkpoint_every_steps:", "save_every:"),
    ):
        assert new in state["config"]
        state["config"] = state["config"].replace(new, old)
    save_torch(state, tmp_path / "split" / "last.ckpt")
    second = trainer(cfg, fbank41, tmp_path / "split", "pr")
    assert second.restore() and second.step == 3
    resumed = second.fit()
    for key in ("value", "dev", "test", "best_step"):
        assert resumed[key] == whole[key], key
    a = load_probe_file(tmp_path / "whole" / "dev-best.ckpt")["head"]
    b = load_probe_file(tmp_path / "split" / "dev-best.ckpt")["head"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole" / "metrics.csv").read_text() == (
        tmp_path / "split" / "metrics.csv"
    ).read_text()


@pytest.mark.slow
def test_a_stop_signal_saves_the_step_and_the_run_resumes(tmp_path, small_data, fbank41):
    cfg = small_config(
        tmp_path,
        small_data,
        "pr",
        learning_rate=0.003,
        checkpoint_every_steps=100,
        eval_every_steps=4,
    )
    whole = trainer(cfg, fbank41, tmp_path / "whole", "pr").fit()
    first = trainer(cfg, fbank41, tmp_path / "split", "pr")
    optimizer_step = first._optimizer_step

    def step_then_sigterm():
        lr = optimizer_step()
        if first.step == 3:  # not a save point (save_every 100, eval_every 4)
            signal.raise_signal(signal.SIGTERM)
        return lr

    first._optimizer_step = step_then_sigterm
    with pytest.raises(StoppedBySignal) as e:
        first.fit()
    assert e.value.signum == signal.SIGTERM and "stopped by SIGTERM at step 3" in str(e.value)
    second = trainer(cfg, fbank41, tmp_path / "split", "pr")
    assert second.restore() and second.step == 3
    assert second.fit()["value"] == whole["value"]


def test_resume_refuses_a_changed_config(tmp_path, small_data, fbank41):
    cfg = small_config(tmp_path, small_data)
    trainer(cfg, fbank41, tmp_path / "run").fit(until=1)
    with pytest.raises(ScpcError, match="saved with another config"):
        trainer(cfg, fbank41, tmp_path / "run", **{"train.learning_rate": 0.5}).fit()
