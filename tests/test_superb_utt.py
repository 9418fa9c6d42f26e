"""SUPERB utterance-level tasks (KS, SID, ASV) and the legacy speaker probes: heads, data,
metrics and bad input."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scpc.cli.init import main as init_main
from scpc.data.datadir import copy_filtered, read_table, select_utterances, utt2spk_to_spk2utt
from scpc.downstream.config import load_config
from scpc.downstream.task import Example
from scpc.downstream.tasks import make_task
from scpc.downstream.tasks.asv import SpeakerVerification, cosine_scores, min_dcf, read_trials
from scpc.downstream.tasks.ks import CLASSES
from scpc.downstream.tasks.sid import SpeakerIdentification
from scpc.downstream.tasks.speaker import split_utterances
from scpc.downstream.trainer import SuperbTrainer
from scpc.errors import ScpcError
from scpc.eval.metrics import equal_error_rate
from scpc.nn.heads import (
    TDNN,
    AMSoftmax,
    UtteranceClassifier,
    XVector,
    mean_pool,
    stats_pool,
)


def padded(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=7.0), lens


def test_mean_pool_ignores_padding():
    torch.manual_seed(0)
    seqs = [torch.randn(5, 3), torch.randn(2, 3), torch.randn(9, 3)]
    x, lens = padded(seqs)
    got = mean_pool(x, lens)
    for b, s in enumerate(seqs):
        torch.testing.assert_close(got[b], s.mean(0))


def test_stats_pool_mean_and_unbiased_std_on_a_hand_example():
    # valid frames [1, 10], [3, 10], [5, 10]: mean (3, 10), unbiased std (2, 0)
    x = torch.tensor([[[1.0, 10.0], [3.0, 10.0], [5.0, 10.0], [100.0, -4.0]]])
    got = stats_pool(x, torch.tensor([3]))
    torch.testing.assert_close(got, torch.tensor([[3.0, 10.0, 2.0, 0.0]]), atol=1e-4, rtol=0)
    one = stats_pool(x, torch.tensor([1]))
    torch.testing.assert_close(one, torch.tensor([[1.0, 10.0, 0.0, 0.0]]), atol=1e-4, rtol=0)


def test_utterance_classifier_padded_batch_equals_one_at_a_time():
    torch.manual_seed(0)
    head = UtteranceClassifier(6, 4, projector_dim=8)
    seqs = [torch.randn(7, 6), torch.randn(3, 6)]
    x, lens = padded(seqs)
    batch = head(x, lens)
    for b, s in enumerate(seqs):
        torch.testing.assert_close(batch[b], head(s[None], torch.tensor([len(s)]))[0])


def test_am_softmax_logits_and_loss_against_a_hand_computation():
    am = AMSoftmax(2, 3, scale=30.0, margin=0.4)
    with torch.no_grad():
        am.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]))
    x = torch.tensor([[3.0, 4.0]])  # cosines with the classes: 0.6, 0.8, -0.7 * sqrt(2)
    cos = torch.tensor([0.6, 0.8, -7 / (5 * math.sqrt(2))])
    torch.testing.assert_close(am.logits(x)[0], 30 * cos)
    target = torch.tensor([0])
    hand = 30 * torch.tensor([0.6 - 0.4, 0.8, -7 / (5 * math.sqrt(2))])
    torch.testing.assert_close(am.logits(x, target)[0], hand)
    expected = -(hand[0] - torch.logsumexp(hand, 0))
    torch.testing.assert_close(am(x, target), expected)


def test_tdnn_output_length_and_receptive_field():
    layer = TDNN(1, 1, context=3, dilation=2)
    assert layer(torch.zeros(1, 10, 1)).shape == (1, 6, 1)
    xv = XVector(4, hidden_dim=8, agg_dim=6, embed_dim=5)
    assert xv.receptive_field == 15  # 4 + 2*2 + 2*3 + 0 + 0 frames of context, plus one
    out, out_lens = xv.frame_outputs(torch.zeros(2, 20, 4), torch.tensor([20, 16]))
    assert out.shape == (2, 6, 6) and out_lens.tolist() == [6, 2]
    # output frame 0 depends on exactly the first 15 input frames
    x = torch.zeros(1, 20, 4, requires_grad=True)
    xv.frame_outputs(x, torch.tensor([20]))[0][0, 0].sum().backward()
    touched = (x.grad.abs().sum(-1) > 0)[0]
    assert touched[15:].sum() == 0
    # an utterance shorter than the receptive field still gives one frame
    out, out_lens = xv.frame_outputs(torch.randn(1, 4, 4), torch.tensor([4]))
    assert out.shape[1] == 1 and out_lens.tolist() == [1]


def test_xvector_padded_batch_equals_one_at_a_time():
    torch.manual_seed(0)
    xv = XVector(4, hidden_dim=8, agg_dim=6, embed_dim=5)
    seqs = [torch.randn(30, 4), torch.randn(17, 4), torch.randn(22, 4)]
    x, lens = padded(seqs)
    emb, out = xv.embed(x, lens), xv(x, lens)
    assert emb.shape == (3, 5)
    for b, s in enumerate(seqs):
        one = s[None], torch.tensor([len(s)])
        torch.testing.assert_close(emb[b], xv.embed(*one)[0])
        torch.testing.assert_close(out[b], xv(*one)[0])
    assert F.relu(emb).equal(emb)


# --- tasks on the prepared mini data -------------------------------------------------------


@pytest.fixture(scope="module")
def ks_data(mini_data):
    root = mini_data.parent / "mini_speech_commands"
    return {"train": str(root / "train"), "dev": str(root / "valid"), "test": str(root / "test")}


@pytest.fixture(scope="module")
def vox(mini_data):
    return mini_data.parent / "mini_voxceleb1"


def loaded(name: str, data: dict[str, str], **cfg):
    task = make_task(name)
    return task, task.load(data, {**task.defaults, **cfg})


def copy_dir(src, dest):
    return str(shutil.copytree(src, dest))


def test_ks_label_set_is_the_12_superb_classes():
    assert CLASSES == (
        *("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
        "_unknown_",
        "_silence_",
    )


def test_ks_maps_unknown_words_and_background_silence_from_the_prepared_data(ks_data):
    task, splits = loaded("ks", ks_data, balance=False)
    assert task.state() == {"classes": list(CLASSES)}
    by_utt = {ex.uttid: ex for ex in splits["train"]}
    assert CLASSES[by_utt["0306e6f7-bed-0"].target] == "_unknown_"
    yes = next(ex for ex in splits["train"] if "-yes-" in ex.uttid)
    assert CLASSES[yes.target] == "yes"
    silence = [ex for ex in splits["train"] if CLASSES[ex.target] == "_silence_"]
    assert silence and all("_background_noise_" in ex.audio for ex in silence)
    assert all(ex.end is not None and ex.end - ex.start == pytest.approx(1.0) for ex in silence)
    # clips are whole files: the segments' end -1 becomes None
    assert yes.start == 0.0 and yes.end is None
    for split in ("dev", "test"):
        assert {CLASSES[ex.target] for ex in splits[split]} == set(CLASSES)


def test_ks_balancing_repeats_every_class_up_to_the_largest(ks_data):
    _, plain = loaded("ks", ks_data, balance=False)
    _, bal = loaded("ks", ks_data)
    count = Counter(ex.target for ex in plain["train"])
    counts = Counter(ex.target for ex in bal["train"])
    assert set(counts.values()) == {max(count.values())} and len(counts) == 12
    assert {ex.uttid for ex in bal["train"]} == {ex.uttid for ex in plain["train"]}
    assert [ex.uttid for ex in bal["dev"]] == [ex.uttid for ex in plain["dev"]]


def test_ks_unknown_label_is_an_error_naming_file_and_line(ks_data, tmp_path):
    bad = copy_dir(ks_data["dev"], tmp_path / "valid")
    lines = (tmp_path / "valid" / "utt2label").read_text().splitlines()
    utt = lines[2].split()[0]
    lines[2] = f"{utt} bed"
    (tmp_path / "valid" / "utt2label").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ScpcError, match=rf"utt2label:3: {utt}: label 'bed' is not one of the 12 classes"
    ):
        loaded("ks", {**ks_data, "dev": bad})


def test_tasks_refuse_missing_or_unknown_splits(ks_data):
    with pytest.raises(ScpcError, match="takes the data dirs train, dev, test"):
        loaded("ks", {"train": ks_data["train"], "valid": ks_data["dev"]})


def test_sid_classes_are_the_training_speakers(vox):
    data = {s: str(vox / f"sid_{s}") for s in ("train", "dev", "test")}
    task, splits = loaded("sid", data)
    assert len(task.speakers) == 20 and task.speakers == sorted(task.speakers)
    for examples in splits.values():
        assert all(task.speakers[ex.target] == ex.uttid.split("-")[0] for ex in examples)


def test_sid_unknown_dev_speaker_is_an_error_naming_file_and_line(vox, tmp_path):
    data = {s: str(vox / f"sid_{s}") for s in ("train", "dev", "test")}
    dev = tmp_path / "sid_dev"
    shutil.copytree(vox / "sid_dev", dev)
    text = (dev / "utt2spk").read_text().splitlines()
    last = text[-1].split()[0]
    text[-1] = f"{last} id99999"
    (dev / "utt2spk").write_text("\n".join(text) + "\n")
    (dev / "spk2utt").write_text(
        "".join(f"{s} {u}\n" for s, u in utt2spk_to_spk2utt(read_table(dev / "utt2spk")).items())
    )
    (dev / "spk2gender").unlink()
    with pytest.raises(
        ScpcError,
        match=rf"utt2spk:{len(text)}: {last}: speaker 'id99999' is not one of the 20 training",
    ):
        loaded("sid", {**data, "dev": str(dev)})


@pytest.mark.parametrize("length", [50, 128, 129, 1000])
def test_sid_crop_never_exceeds_max_and_keeps_short_utterances_whole(length):
    task = SpeakerIdentification()
    task.max_samples = 128
    wav = torch.arange(length, dtype=torch.float32)
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = task.augment(wav, Example("u", "x"), rng)
        if length <= 128:
            assert out.equal(wav)
        else:
            assert len(out) == 128 and out.equal(torch.arange(out[0], out[0] + 128))
    starts = {int(task.augment(wav, Example("u", "x"), rng)[0]) for _ in range(50)}
    assert length <= 128 or len(starts) > 1


def test_speaker_split_is_deterministic_disjoint_and_covers_every_speaker(mini_data):
    data = {"all": str(mini_data / "train")}
    task, splits = loaded("spk_utt", data)
    _, again = loaded("spk_frame", data)
    ids = {s: [ex.uttid for ex in exs] for s, exs in splits.items()}
    assert ids == {s: [ex.uttid for ex in exs] for s, exs in again.items()}
    sets = {s: set(u) for s, u in ids.items()}
    assert not (
        sets["train"] & sets["dev"] or sets["train"] & sets["test"] or sets["dev"] & sets["test"]
    )
    utt2spk = read_table(mini_data / "train" / "utt2spk")
    assert sets["train"] | sets["dev"] | sets["test"] == set(utt2spk)
    speakers = sorted(set(utt2spk.values()))
    assert task.speakers == speakers
    for part in ("train", "dev", "test"):
        assert {utt2spk[u] for u in sets[part]} == set(speakers)
    # 18 utterances per speaker: round(1.8) = 2 dev and 2 test each
    assert len(sets["dev"]) == len(sets["test"]) == 2 * len(speakers)
    assert all(task.speakers[ex.target] == utt2spk[ex.uttid] for ex in splits["test"])


def test_speaker_split_spreads_held_out_utterances_and_refuses_tiny_speakers(tmp_path):
    def write(utts):
        (tmp_path / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in utts))

    write([f"a-{i:02d}" for i in range(10)] + ["b-1", "b-2", "b-3"])
    assert split_utterances(tmp_path, 0.2, 0.2) == {
        "train": ["a-00", "a-02", "a-04", "a-05", "a-07", "a-09", "b-2"],
        "dev": ["a-01", "a-06", "b-1"],
        "test": ["a-03", "a-08", "b-3"],
    }
    write(["a-1", "a-2", "a-3", "b-1", "b-2"])
    with pytest.raises(ScpcError, match=r"utt2spk: speaker b has 2 utterances, too few"):
        split_utterances(tmp_path, 0.1, 0.1)
    with pytest.raises(ScpcError, match="must be positive and sum to less than 1"):
        split_utterances(tmp_path, 0.5, 0.5)


def test_spk_frame_accuracy_counts_every_valid_frame():
    task = make_task("spk_frame")
    task.set_state({"speakers": ["a", "b"]})
    head = task.build_head(2, 160, task.defaults)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    feats = torch.tensor([[[1.0, 0], [0, 1], [1, 0]], [[0, 1], [5, 0], [5, 0]]])
    examples = [Example("u1", "x", target=0), Example("u2", "x", target=1)]
    pred = task.predict(head, feats, torch.tensor([3, 1]), examples)
    assert pred == [[0, 1, 0], [1]]
    assert task.score("test", examples, pred)["accuracy"] == pytest.approx(75.0)


def test_asv_trials_are_loaded_and_short_training_utterances_dropped(vox):
    data = {"train": str(vox / "asv_train"), "test": str(vox / "asv_test")}
    task, splits = loaded("asv", data, min_samples=48000)
    durations = read_table(vox / "asv_train" / "utt2dur")
    kept = {ex.uttid for ex in splits["train"]}
    assert kept == {u for u, d in durations.items() if float(d) * 16000 > 48000}
    assert all(ex.target is None for ex in splits["test"])
    assert len(task.trials["test"]) == len((vox / "asv_test" / "trials").read_text().splitlines())
    assert task.has_dev is False and "dev" not in splits


def test_asv_trial_naming_an_unknown_utterance_is_an_error_naming_file_and_line(vox, tmp_path):
    test = tmp_path / "asv_test"
    shutil.copytree(vox / "asv_test", test)
    lines = (test / "trials").read_text().splitlines()
    lines[4] = lines[4].split()[0] + " id00000-nosuch-00001 nontarget"
    (test / "trials").write_text("\n".join(lines) + "\n")
    with pytest.raises(ScpcError, match=r"trials:5: id00000-nosuch-00001"):
        loaded("asv", {"train": str(vox / "asv_train"), "test": str(test)})
    with pytest.raises(ScpcError, match=r"trials:5: id00000-nosuch-00001 is not an utterance"):
        read_trials(test, set(read_table(test / "utt2spk")))


def asv_with_trials(trials):
    task = SpeakerVerification()
    task.trials = {"test": trials}
    return task


def test_asv_identical_embeddings_per_speaker_score_zero_eer():
    torch.manual_seed(0)
    speakers = {s: torch.randn(16) for s in "abcd"}
    utts = [f"{s}{i}" for s in "abcd" for i in range(3)]
    # scaled copies: the cosine ignores length
    emb = [speakers[u[0]] * (1 + int(u[1])) for u in utts]
    trials = [(x, y, x[0] == y[0]) for x in utts for y in utts if x < y]
    task = asv_with_trials(trials)
    out = task.score("test", [Example(u, "x") for u in utts], emb)
    assert out["eer"] == 0.0 and out["min_dcf"] == 0.0


def test_cosine_scoring_and_eer_on_constructed_embeddings():
    emb = {
        "e": torch.tensor([1.0, 0.0]),
        "t1": torch.tensor([2.0, 0.0]),  # cosine 1
        "t2": torch.tensor([0.0, 3.0]),  # cosine 0
        "n1": torch.tensor([1.0, 1.0]),  # cosine 1/sqrt(2)
        "n2": torch.tensor([-1.0, 0.0]),  # cosine -1
    }
    trials = [("e", "t1", True), ("e", "t2", True), ("e", "n1", False), ("e", "n2", False)]
    scores = cosine_scores(emb, trials)
    assert scores == pytest.approx([1.0, 0.0, 1 / math.sqrt(2), -1.0])
    # sorted: t1 (1), n1 (.71), t2 (0), n2 (-1): one target above and one below a non-target
    task = asv_with_trials(trials)
    out = task.score("test", [Example(u, "x") for u in emb], list(emb.values()))
    assert out["eer"] == pytest.approx(equal_error_rate(scores, [t[2] for t in trials]))
    assert out["eer"] == pytest.approx(50.0)


def test_min_dcf_on_a_hand_example():
    # thresholds: reject all -> cost .01 (normalised 1); accept the top target -> P_miss .5,
    # cost .005 (.5); accept two (one false alarm of two) -> .5 * .99 / .01 = 49.5
    assert min_dcf([0.9, 0.5, 0.1, 0.0], [True, False, True, False]) == pytest.approx(0.5)
    assert min_dcf([1.0, 1.0], [True, False]) == pytest.approx(1.0)  # a tie: no useful cut


def test_asv_score_needs_an_embedding_for_every_trial_utterance():
    task = asv_with_trials([("a", "b", True), ("a", "c", False)])
    with pytest.raises(ScpcError, match="no embedding of c"):
        task.score("test", [Example("a", "x"), Example("b", "x")], [torch.ones(2)] * 2)


def test_asv_head_loss_and_embeddings_run_on_a_padded_batch():
    task = SpeakerVerification()
    task.set_state({"speakers": ["a", "b", "c"]})
    cfg = {**task.defaults, "hidden_dim": 8, "agg_dim": 6, "embed_dim": 5}
    head = task.build_head(4, 160, cfg)
    feats, lens = torch.randn(2, 20, 4), torch.tensor([20, 12])
    examples = [Example("u1", "x", target=0), Example("u2", "x", target=2)]
    loss = task.loss(head, feats, lens, examples)
    loss.backward()
    assert loss.isfinite() and head.amsoftmax.weight.grad is not None
    emb = task.predict(head, feats, lens, examples)
    assert len(emb) == 2 and emb[0].shape == (5,)
    torch.testing.assert_close(emb[1], task.predict(head, feats[1:, :12], lens[1:], examples)[0])


# --- tiny end-to-end runs of the trainer --------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fbank_upstream(tmp_path_factory):
    path = tmp_path_factory.mktemp("upstream") / "fbank.ckpt"
    assert init_main(["frontend", str(ROOT / "conf/feats/fbank-41.json"), str(path)]) == 0
    return path


def tiny(src, dest, mode, num):
    """A few utterances of a mini data dir (trials and segments carried along)."""
    copy_filtered(src, dest, select_utterances(src, mode, num))
    return str(dest)


@pytest.fixture(scope="module")
def tiny_data(mini_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    ks, vox = mini_data.parent / "mini_speech_commands", mini_data.parent / "mini_voxceleb1"
    return {
        "ks": {
            "train": tiny(ks / "train", out / "ks_train", "even", 24),
            "dev": tiny(ks / "valid", out / "ks_dev", "even", 8),
            "test": tiny(ks / "test", out / "ks_test", "even", 8),
        },
        "sid": {
            "train": tiny(vox / "sid_train", out / "sid_train", "per-spk", 2),
            "dev": tiny(vox / "sid_dev", out / "sid_dev", "even", 6),
            "test": tiny(vox / "sid_test", out / "sid_test", "even", 6),
        },
        "asv": {
            "train": tiny(vox / "asv_train", out / "asv_train", "per-spk", 2),
            "test": tiny(vox / "asv_test", out / "asv_test", "per-spk", 2),
        },
        "spk_frame": {"all": tiny(mini_data / "train", out / "spk", "per-spk", 3)},
        "spk_utt": {"all": str(out / "spk")},
    }


@pytest.mark.parametrize("name", ["ks", "sid", "asv", "spk_frame", "spk_utt"])
def test_tiny_end_to_end_run_on_the_mini_data(name, tiny_data, fbank_upstream, tmp_path):
    task = make_task(name)
    overrides = {f"data.{split}": path for split, path in tiny_data[name].items()}
    overrides.update(
        {
            "train.max_steps": 2,
            "train.eval_every_steps": 2,
            "train.batch_size": 4,
            "train.accumulate_grad_batches": 1,
            "train.device": "cpu",
            "train.cache": "memory",
        }
    )
    if name == "ks":
        overrides["task.balance"] = False  # repeated examples only cost upstream time here
    if name == "asv":
        overrides.update({"task.hidden_dim": 8, "task.agg_dim": 12, "task.embed_dim": 8})
    cfg = load_config(ROOT / f"conf/superb.{name}.mini.yaml", task, overrides)
    results = SuperbTrainer(task, cfg, fbank_upstream, tmp_path / "run", quiet=True).fit()
    assert results["metric"] == task.metric and results["steps"] == 2
    assert 0 <= results["value"] <= 100 and (tmp_path / "run" / "dev-best.ckpt").is_file()
    assert results["selected_on"] == ("test" if name == "asv" else "dev")
