"""The CTC baseline's parts: BPE, config freezing, MVN, stacking, the model file, a
resumable training phase, decoding with LM tuning, and the WER table."""

from __future__ import annotations

import json
import math
import signal

import numpy as np
import pytest
import torch
from conftest import tb_scalars

from scpc.baseline import bpe, config, data, decode, lm, model
from scpc.baseline.train import PhaseTrainer, trained_config, upgrade_state
from scpc.config import dump
from scpc.errors import ScpcError, StoppedBySignal
from scpc.eval.ctc_decode import greedy_decode, tokens_to_words
from scpc.eval.ngram import NgramLM
from scpc.io import save_torch

SENTENCES = [
    "THE CAT SAT ON THE MAT",
    "A DOG RAN IN THE PARK",
    "THE BIRD SANG ON THE TREE",
    "MY CAT AND MY DOG PLAY",
    "THE SUN ROSE OVER THE HILL",
    "SHE READ THE BOOK AT NIGHT",
] * 5


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("bpe") / "bpe.model"
    return bpe.train(SENTENCES, path, vocab_size=40)


# ---------------------------------------------------------------------------- BPE


def test_bpe_round_trip_and_blank_last(tokenizer):
    assert tokenizer.num_classes == 41 and tokenizer.blank == 40
    assert tokenizer.vocab[-1] == bpe.BLANK_TOKEN and len(set(tokenizer.vocab)) == 41
    for s in [*SENTENCES[:6], "THE DOG SAT IN THE TREE"]:
        ids = tokenizer.encode(s)
        assert ids and max(ids) < tokenizer.blank
        assert tokenizer.decode(ids) == s
        # the decoder's word rule (pieces starting with ▁) gives sentencepiece's words
        assert " ".join(tokens_to_words(ids, tokenizer.vocab)) == s


def test_bpe_drops_characters_it_lacks(tokenizer):
    assert tokenizer.decode(tokenizer.encode("THE CAT 9")).split() == ["THE", "CAT"]


def test_bpe_vocabulary_too_large_is_a_clear_error(tmp_path):
    with pytest.raises(ScpcError, match="cannot make 5000 BPE pieces"):
        bpe.train(SENTENCES, tmp_path / "x.model", vocab_size=5000)
    assert not (tmp_path / "x.model").exists()
    (tmp_path / "bad.model").write_text("not a model")
    with pytest.raises(ScpcError, match="bad.model: not a SentencePiece model"):
        bpe.Tokenizer(tmp_path / "bad.model")


# ---------------------------------------------------------------------------- config


def test_config_freezes_the_model_but_not_the_decoding(tmp_path):
    src = tmp_path / "c.yaml"
    src.write_text("bpe: {vocab_size: 50}\nshort: {learning_rate: 1e-3}\n")
    cfg = config.load(src, {"lm.order": 2})
    assert cfg["short"]["learning_rate"] == 0.001  # YAML's 1e-3 string read as a number
    assert cfg["lm"]["order"] == 2 and cfg["model"]["stack"] == 3  # a default
    frozen = tmp_path / "bl" / "config.yaml"
    config.freeze(cfg, frozen)
    again = config.freeze(config.load(src, {"decode.beam": 3, "lm.order": 0}), frozen)
    assert again["decode"]["beam"] == 3 and config.read_frozen(tmp_path / "bl") == again
    with pytest.raises(ScpcError, match="trained with another config") as e:
        config.freeze(config.load(src, {"bpe.vocab_size": 60}), frozen)
    assert "-  vocab_size: 50" in str(e.value) and "+  vocab_size: 60" in str(e.value)
    src.write_text("model: {hiden_size: 3}\n")
    with pytest.raises(ScpcError, match="unknown config key model.hiden_size"):
        config.load(src)


def test_a_config_frozen_with_old_key_names_still_matches(tmp_path, capsys):
    """train.clip and train.save_every were renamed; a baseline frozen with them goes on."""
    src = tmp_path / "c.yaml"
    src.write_text("train: {grad_clip_norm: 2.0, checkpoint_every_steps: 7}\n")
    cfg = config.load(src)
    frozen = tmp_path / "bl" / "config.yaml"
    old_text = dump(cfg).replace("grad_clip_norm:", "clip:")
    frozen.parent.mkdir()
    frozen.write_text(old_text.replace("checkpoint_every_steps:", "save_every:"))
    assert config.read_frozen(tmp_path / "bl") == cfg
    assert "train.clip is deprecated; it is read as train.grad_clip_norm" in capsys.readouterr().err
    assert config.freeze(cfg, frozen) == cfg  # not refused; rewritten under the new names
    assert "grad_clip_norm: 2.0" in frozen.read_text()
    # a last.ckpt saved before the rename resumes: its config compares as the current one
    saved = trained_config(cfg).replace("grad_clip_norm:", "clip:")
    saved = saved.replace("checkpoint_every_steps:", "save_every:")
    assert "clip: 2.0" in saved and upgrade_state({"config": saved})["config"] == trained_config(
        cfg
    )


# ---------------------------------------------------------------------------- data


def make_set(root, part, texts, channels=4, seed=0, lengths=None):
    """A data dir (text) and representation dir of random (T, C) tensors."""
    g = torch.Generator().manual_seed(seed)
    (root / "data" / part).mkdir(parents=True, exist_ok=True)
    reps = root / "reps" / part
    reps.mkdir(parents=True, exist_ok=True)
    utts = [f"u{seed}-{i:03d}" for i in range(len(texts))]
    lines = []
    for i, (u, t) in enumerate(zip(utts, texts)):
        n = lengths[i] if lengths else 30 + 6 * len(t.split())
        torch.save(torch.randn(n, channels, generator=g) * 2 + 1, reps / f"{u}.pt")
        lines.append(f"{u} {t}\n")
    (root / "data" / part / "text").write_text("".join(lines))
    return data.RepSet.open(reps, root / "data" / part)


def test_stats_are_the_mean_and_deviation_of_all_frames(tmp_path):
    reps = make_set(tmp_path, "train", SENTENCES[:5])
    s = data.compute_stats(reps)
    frames = torch.cat([torch.load(p) for p in reps.paths])
    torch.testing.assert_close(s["mean"], frames.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(s["std"], frames.std(0, unbiased=False), atol=1e-5, rtol=0)
    assert s["frames"] == len(frames) and sum(s["lengths"].values()) == len(frames)
    save_torch(s, tmp_path / "mvn.pt")
    assert data.load_stats(tmp_path / "mvn.pt")["frames"] == s["frames"]
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ScpcError, match="other.pt: not scpc-baseline MVN statistics"):
        data.load_stats(tmp_path / "other.pt")


def test_shortest_takes_the_fewest_frames_with_ties_by_id():
    assert data.shortest({"c": 5, "a": 7, "b": 5, "d": 1}, 3) == ["d", "b", "c"]
    assert data.shortest({"c": 5, "a": 7}, None) == ["c", "a"]


def test_missing_and_bad_representations_are_named(tmp_path):
    reps = make_set(tmp_path, "dev", SENTENCES[:3])
    reps.paths[1].unlink()
    with pytest.raises(ScpcError, match=r"no representation of 1 of the 3 .*first: u0-001"):
        data.RepSet.open(tmp_path / "reps" / "dev", tmp_path / "data" / "dev")
    torch.save(torch.tensor([[float("nan")]]), reps.paths[1])
    with pytest.raises(ScpcError, match="u0-001.pt: representation holds NaN"):
        data.load_rep(reps.paths[1])


def test_stacking_concatenates_consecutive_frames_and_rounds_up():
    x = torch.arange(2 * 7 * 2, dtype=torch.float).reshape(2, 7, 2)
    lens = torch.tensor([7, 4])
    y, ylens = model.stack_frames(x, lens, 3)
    assert y.shape == (2, 3, 6) and ylens.tolist() == [3, 2]
    assert y[0, 0].tolist() == x[0, :3].reshape(-1).tolist()
    assert y[0, 2].tolist() == [*x[0, 6].tolist(), 0, 0, 0, 0]  # the last frame, then zeros
    assert y[1, 1].tolist() == [*x[1, 3].tolist(), 0, 0, 0, 0]  # frames past 4 are zeroed


def test_model_normalises_with_its_statistics_and_saves_them(tmp_path):
    m = model.BaselineModel(4, 7, hidden_size=5, num_layers=2, stack=3)
    m.set_mvn(torch.tensor([1.0, 2, 3, 4]), torch.tensor([2.0, 2, 2, 2]))
    x, lens = torch.randn(2, 10, 4), torch.tensor([10, 8])
    m.eval()
    logp, olens = m(x, lens)
    assert logp.shape == (2, 4, 7) and olens.tolist() == [4, 3]
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 4))
    model.save_model(tmp_path / "m.pt", m, list("abcdef") + ["<blank>"], {"phase": "full"})
    loaded, vocab, prov = model.load_model(tmp_path / "m.pt")
    torch.testing.assert_close(loaded(x, lens)[0], logp)
    assert vocab[-1] == "<blank>" and prov == {"phase": "full"}
    with pytest.raises(ScpcError, match="input has 5 channels, the model expects 4"):
        m(torch.randn(1, 3, 5), torch.tensor([3]))


# ---------------------------------------------------------------------------- training


def tiny_config(**phase):
    raw = {
        "model": {"hidden_size": 8, "num_layers": 1},
        "train": {
            "batch_size": 4,
            "eval_batch_size": 4,
            "checkpoint_every_steps": 1,
            "device": "cpu",
        },
        "short": {"utterances": 6, "max_epochs": 2, "learning_rate": 0.01},
        "full": {"max_epochs": 2, "learning_rate": 0.01, **phase},
        "specaug": {"time_warp": 2, "max_time_mask": 3},
    }
    return config.complete(raw, "test")


@pytest.fixture
def sets(tmp_path, tokenizer):
    train = make_set(tmp_path, "train", SENTENCES[:12], seed=1)
    dev = make_set(tmp_path, "dev", SENTENCES[12:16], seed=2)
    return train, dev, data.compute_stats(train)


def kaldi_table(reps, out):
    """The set's representations as a Kaldi table (feats.scp + utt2num_frames) in ``out``."""
    import kaldiio

    out.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as writer:
        for utt, path in zip(reps.utts, reps.paths):
            writer(utt, torch.load(path).numpy())
    frames = "".join(f"{u} {len(torch.load(p))}\n" for u, p in zip(reps.utts, reps.paths))
    (out / "utt2num_frames").write_text(frames)
    return out


@pytest.mark.slow
def test_a_kaldi_table_trains_the_same_model_as_pt_files(tmp_path, tokenizer, sets):
    train, dev, stats = sets
    tables = [kaldi_table(s, tmp_path / "kaldi" / s.name) for s in (train, dev)]
    ktrain = data.RepSet.open(tables[0], tmp_path / "data" / "train")
    kdev = data.RepSet.open(tables[1] / "feats.scp", tmp_path / "data" / "dev")  # or the file
    assert ktrain.frames == [len(torch.load(p)) for p in train.paths]
    kstats = data.compute_stats(ktrain)
    assert kstats["lengths"] == stats["lengths"]
    torch.testing.assert_close(kstats["mean"], stats["mean"], atol=0, rtol=0)
    losses = []
    for name, (t, d) in {"pt": (train, dev), "kaldi": (ktrain, kdev)}.items():
        PhaseTrainer(tiny_config(), "short", tmp_path / name, t, d, tokenizer, stats).fit()
        rows = (tmp_path / name / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        cols = [header.index(c) for c in ("train_loss", "dev_loss")]
        losses.append([float(r.split(",")[c]) for r in rows[1:] for c in cols])
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    (tables[0] / "feats.scp").write_text("u1-000 " + str(tables[0] / "feats.ark") + ":9999999\n")
    with pytest.raises(ScpcError, match=r"no representation of 11 of the 12"):
        data.RepSet.open(tables[0], tmp_path / "data" / "train")


@pytest.mark.slow
def test_phase_trains_logs_and_keeps_the_dev_best_model(tmp_path, tokenizer, sets):
    train, dev, stats = sets
    bl = tmp_path / "bl"
    short = PhaseTrainer(tiny_config(), "short", bl, train, dev, tokenizer, stats, log_file=True)
    assert len(short.train) == 6  # the six shortest
    assert sorted(short.lengths) == sorted(stats["lengths"].values())[:6]
    best = short.fit()
    full = PhaseTrainer(tiny_config(), "full", bl, train, dev, tokenizer, stats)
    assert len(full.train) == 12 and full.augment is not None
    full.fit(init=best)
    rows = (bl / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["phase", "epoch", "step"]
    assert [r.split(",")[:2] for r in rows[1:]] == [
        ["short", "0"],
        ["short", "1"],
        ["full", "0"],
        ["full", "1"],
    ]
    assert (bl / "curves.png").stat().st_size > 0 and "[full] done" in (
        bl / "train.log"
    ).read_text()
    for phase in ("short", "full"):  # TensorBoard: a run per phase, a row per epoch
        tb = tb_scalars(bl / "tb" / phase)
        assert {"train_loss", "dev_loss", "dev_ter", "lr", "seconds"} <= set(tb)
        assert len(tb["dev_ter"]) == 2
    m, vocab, prov = model.load_model(bl / "full" / "best.pt")
    assert vocab == tokenizer.vocab and prov["phase"] == "full"
    torch.testing.assert_close(m.mean, stats["mean"])  # MVN travels with the model


@pytest.mark.parametrize("stop", ["killed", "signal"])
@pytest.mark.slow
def test_an_interrupted_phase_resumes_to_the_same_model(tmp_path, tokenizer, sets, stop):
    # killed: resumes from the last periodic save; signal: SIGUSR1 saves at that step and stops
    train, dev, stats = sets

    def fit(bl, stop_at=None):
        def on_step(trainer):
            if trainer.progress.step == stop_at:
                if stop == "killed":
                    raise KeyboardInterrupt
                signal.raise_signal(signal.SIGUSR1)

        t = PhaseTrainer(tiny_config(), "full", bl, train, dev, tokenizer, stats)
        t.fit(on_step=on_step)
        return t

    whole = fit(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt if stop == "killed" else StoppedBySignal) as e:
        fit(tmp_path / "b", stop_at=4)  # mid-epoch 1 (three batches an epoch)
    if stop == "signal":
        assert e.value.signum == signal.SIGUSR1
        state = torch.load(tmp_path / "b" / "full" / "last.ckpt", weights_only=False)
        assert state["progress"]["step"] == 4
    resumed = fit(tmp_path / "b")
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert (tmp_path / "a" / "metrics.csv").read_text().count("full") == (
        tmp_path / "b" / "metrics.csv"
    ).read_text().count("full")


def test_batch_seconds_buckets_by_duration_and_resumes(tmp_path, tokenizer, sets):
    train, dev, stats = sets
    cfg = tiny_config()
    cfg["train"]["batch_seconds"] = 2.0
    frames = [stats["lengths"][u] for u in train.utts]
    with pytest.raises(ScpcError, match="batch_seconds needs the utterances' durations"):
        PhaseTrainer(cfg, "full", tmp_path / "a", train, dev, tokenizer, stats)
    # 100 frames a second (utt2dur as Kaldi writes it)
    table = "".join(f"{u} {n / 100:.2f}\n" for u, n in zip(train.utts, frames))
    (train.data_dir / "utt2dur").write_text(table)
    t = PhaseTrainer(cfg, "full", tmp_path / "a", train, dev, tokenizer, stats)
    assert t.frame_seconds == pytest.approx(0.01)
    plan = t._plan(0)
    assert sorted(i for b in plan for i in b) == list(range(len(frames)))
    assert all(max(frames[i] for i in b) * len(b) <= 200 or len(b) == 1 for b in plan)
    assert plan == t._plan(0) != t._plan(1)  # a function of (seed, phase, epoch)
    t.fit()
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[2]) for r in rows] == [len(plan), len(plan) + len(t._plan(1))]
    with pytest.raises(ScpcError, match="batch_seconds must be a positive number"):
        config.complete({"train": {"batch_seconds": 0}}, "test")


@pytest.mark.slow
def test_bf16_autocast_trains_on_cpu_and_old_states_still_resume(tmp_path, tokenizer, sets):
    train, dev, stats = sets
    losses = {}
    for amp in ("off", "bf16"):
        cfg = tiny_config()
        cfg["train"]["amp"] = amp
        t = PhaseTrainer(cfg, "short", tmp_path / amp, train, dev, tokenizer, stats)
        t.fit(on_step=lambda tr, amp=amp: losses.setdefault(amp, tr.progress.loss_sum))
        assert all(q.dtype == torch.float32 for q in t.model.parameters())
        assert (tmp_path / amp / "short" / "best.pt").is_file()
    # rounded to bfloat16 inside, not the float32 loss, and close to it
    assert math.isfinite(losses["bf16"]) and losses["bf16"] != losses["off"]
    assert losses["bf16"] == pytest.approx(losses["off"], rel=0.05)
    # a state saved before train.amp / train.batch_seconds existed is this config's
    neutral = trained_config(tiny_config())
    assert "amp" not in neutral and "batch_seconds" not in neutral


def test_a_changed_config_is_not_resumed(tmp_path, tokenizer, sets):
    train, dev, stats = sets
    PhaseTrainer(tiny_config(), "full", tmp_path, train, dev, tokenizer, stats).fit()
    other = PhaseTrainer(tiny_config(dropout=0.3), "full", tmp_path, train, dev, tokenizer, stats)
    with pytest.raises(ScpcError, match="last.ckpt: saved with another config"):
        other.fit()


# ---------------------------------------------------------------------------- LM and decoding


def test_lm_tool_choice(tmp_path):
    out = tmp_path / "lm.arpa"
    assert lm.build(SENTENCES, 2, out, use_kenlm=False) == "scpc"
    assert NgramLM.read_arpa(out).order == 2
    if lm.kenlm_binary() is None:
        with pytest.raises(ScpcError, match="lmplz is not on the PATH"):
            lm.build(SENTENCES, 2, tmp_path / "k.arpa", use_kenlm=True)


class PeakedModel(torch.nn.Module):
    """Stands in for a trained model: the log-probabilities stored per utterance length."""

    def __init__(self, by_length: dict[int, np.ndarray]) -> None:
        super().__init__()
        self.by_length = by_length

    def forward(self, x, lens):
        rows = [torch.from_numpy(self.by_length[int(n)]) for n in lens]
        t = max(len(r) for r in rows)
        out = torch.stack([torch.nn.functional.pad(r, (0, 0, 0, t - len(r))) for r in rows])
        return out.float(), torch.tensor([len(r) for r in rows])


def spelled(tokenizer, text, rival=None, frames_per_piece=2):
    """Log-probabilities that spell ``text``'s pieces (each followed by a blank); where
    ``rival`` (piece -> other piece) names a rival, that frame is a near tie the acoustic
    side gives to the original."""
    v = tokenizer.num_classes
    rows = []
    for piece in tokenizer.encode(text):
        p = np.full(v, 0.01 / v)
        other = (rival or {}).get(piece)
        if other is None:
            p[piece] = 0.99
        else:
            p[piece], p[other] = 0.5, 0.49
        rows.append(p / p.sum())
        for _ in range(frames_per_piece - 1):
            b = np.full(v, 0.01 / v)
            b[tokenizer.blank] = 0.99
            rows.append(b / b.sum())
    return np.log(np.stack(rows))


@pytest.mark.slow
def test_decoding_greedy_beam_and_lm_tuning(tmp_path, tokenizer):
    texts = ["THE CAT SAT ON THE MAT", "THE SUN ROSE OVER THE HILL", "A DOG RAN IN THE PARK"]
    cat, dog = (tokenizer.encode(w) for w in ("CAT", "DOG"))
    assert len(cat) == 1 and len(dog) == 1
    # the acoustic side narrowly hears DOG where the transcript says CAT: only the LM, which
    # has seen "THE CAT SAT" but never "THE DOG" or "DOG SAT", can fix it
    logps = [
        spelled(tokenizer, "THE DOG SAT ON THE MAT", {dog[0]: cat[0]}),
        spelled(tokenizer, texts[1]),
        spelled(tokenizer, texts[2], frames_per_piece=3),  # lengths tell utterances apart
    ]
    assert len({len(lp) for lp in logps}) == 3
    dev = make_set(tmp_path, "dev", texts, lengths=[len(lp) for lp in logps], seed=3)
    fake = PeakedModel({len(lp): lp for lp in logps})
    lm_model = NgramLM.train([s.split() for s in SENTENCES], order=2)
    words = tokens_to_words(greedy_decode(logps[1], tokenizer.blank), tokenizer.vocab)
    assert " ".join(words) == texts[1]

    results = {}
    for nj in (1, 2):
        with decode.Decoder(fake, tokenizer.vocab, lm_model, nj=nj, batch_size=2) as d:
            results[nj] = decode.run(
                d, tmp_path / f"dec{nj}", dev, [], 4, 2, [0.0, 1.0], [0.0], {"x": 1}
            )
    assert results[1]["sets"] == results[2]["sets"]  # workers decode as the parent does
    scores = results[1]["sets"]["dev"]
    assert scores["greedy"]["wer"] == scores["beam4"]["wer"] == pytest.approx(100 / 18)
    assert scores["beam4_lm2"]["wer"] == 0.0  # the LM changes the best path: DOG -> CAT
    tuning = (tmp_path / "dec1" / "tuning.beam4_lm2.csv").read_text().splitlines()
    assert tuning == ["lm_weight,word_bonus,wer", "0.0,0.0,5.56", "1.0,0.0,0.00"]
    assert results[1]["settings"]["beam4_lm2"]["lm_weight"] == 1.0
    hyp = (tmp_path / "dec1" / "dev" / "beam4_lm2.hyp.txt").read_text().splitlines()
    assert hyp[0] == f"{dev.utts[0]} THE CAT SAT ON THE MAT"
    table = decode.wer_table(results[1]).splitlines()
    assert table[0].split() == ["set", "greedy", "beam", "4", "beam", "4", "+", "2-gram"]
    assert table[2].split() == ["dev", "(tuning)", "5.56", "5.56", "0.00"]
    assert len({len(line) for line in table}) == 1
    saved = json.loads((tmp_path / "dec1" / "results.json").read_text())
    assert saved["provenance"] == {"x": 1} and saved["dev"] == "dev"


def test_decoding_without_lm_has_no_grid(tmp_path, tokenizer):
    lp = spelled(tokenizer, "THE CAT SAT")
    dev = make_set(tmp_path, "dev", ["THE CAT SAT"], lengths=[len(lp)])
    with decode.Decoder(PeakedModel({len(lp): lp}), tokenizer.vocab) as d:
        r = decode.run(d, tmp_path / "dec", dev, [], 3, 0, [1.0], [0.0, 1.0])
    assert set(r["settings"]) == {"greedy", "beam3"} and not list(
        (tmp_path / "dec").glob("tuning*")
    )
    assert decode.wer_table(r).splitlines()[2].split() == ["dev", "0.00", "0.00"]
    assert r["sets"]["dev"]["beam3"]["wer"] == 0.0 and math.isclose(
        r["sets"]["dev"]["greedy"]["cer"], 0.0
    )
