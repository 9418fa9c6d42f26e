"""scpc.eval.abx and scpc-abx: exact small cases, DTW, batching, seeds, and zrc_abx2 agreement."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scpc.cli import abx as cli
from scpc.data.alignment import ITEM_HEADER
from scpc.errors import ScpcError
from scpc.eval import abx

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "corpus" / "mini"
HEADER = ITEM_HEADER + "\n"


def write_corpus(root: Path, items: list[tuple], feats: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """Item file lines (file, onset, offset, phone, prev, next, speaker) and .pt features."""
    feat_dir = root / "feats"
    feat_dir.mkdir(parents=True, exist_ok=True)
    for name, x in feats.items():
        torch.save(torch.as_tensor(x, dtype=torch.float32), feat_dir / f"{name}.pt")
    item_file = root / "test.item"
    item_file.write_text(HEADER + "".join(" ".join(map(str, it)) + "\n" for it in items))
    return feat_dir, item_file


def synthetic(root: Path, rng: np.random.Generator, phone_vectors: bool, dim: int = 6):
    """3 speakers x 2 files x 12 tokens of 4 phones; each token 3-6 frames of 10 ms."""
    phones = ["a", "b", "c", "d"]
    table = {p: rng.normal(size=dim) for p in phones}
    items, feats = [], {}
    for spk, utt in itertools.product(range(3), range(2)):
        name, t, frames = f"s{spk}_{utt}", 0, []
        seq = [phones[i % 4] for i in rng.permutation(12)]
        for k, ph in enumerate(seq):
            n = int(rng.integers(3, 7))
            frames += [table[ph] if phone_vectors else rng.normal(size=dim) for _ in range(n)]
            prev, nxt = (seq[k - 1] if k else "#"), (seq[k + 1] if k + 1 < len(seq) else "#")
            items.append((name, f"{t / 100:.2f}", f"{(t + n) / 100:.2f}", ph, prev, nxt, f"s{spk}"))
            t += n
        feats[name] = np.stack(frames)
    return write_corpus(root, items, feats)


@pytest.mark.slow
def test_identical_phone_vectors_give_zero_error(tmp_path):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(0), phone_vectors=True)
    result = abx.score_abx(feat_dir, item_file)
    assert len(result.scores) == 4
    for s in result.scores:
        assert s.error == 0.0 and s.num_groups > 0, s


def test_random_features_give_about_half(tmp_path):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(1), phone_vectors=False)
    for s in abx.score_abx(feat_dir, item_file, context_modes=["any"]).scores:
        assert 0.4 < s.error < 0.6, s


def _hand_case(tmp_path: Path, vectors: dict[str, list[float]]):
    """One speaker, one context, one-frame items (onset 0, offset 0.02 -> frame 0)."""
    items = [(n, "0.00", "0.02", n[0], "x", "y", "s") for n in vectors]
    return write_corpus(tmp_path, items, {n: np.array([v]) for n, v in vectors.items()})


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_hand_computed_angles(tmp_path, distance):
    # phone a at 0 and 10 degrees, b at 90 and 5 degrees. A=a: x=a1 (d(x,a)=10) beats b1 (90)
    # and loses to b2 (5); x=a2 (10) beats b1 (80), loses to b2 (5): 2/4 wrong. A=b: x=b1
    # (85) beats a1 (90), loses to a2 (80); x=b2 (85) loses to both (5, 5): 3/4 wrong.
    vecs = {"a1": _unit(0), "a2": _unit(10), "b1": _unit(90), "b2": _unit(5)}
    feat_dir, item_file = _hand_case(tmp_path, vecs)
    res = abx.score_abx(feat_dir, item_file, ["within"], ["within"], distance=distance)
    assert res.scores[0].error == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert res.scores[0].num_pairs == 2 and res.scores[0].num_triplets == 8


def _dtw_loop(d: np.ndarray) -> float:
    """libriabx2's DTW in plain Python: cumulative cost, then the backtrace's length."""
    n, m = d.shape
    c = np.zeros((n, m), dtype=np.float32)
    for i in range(n):
        for j in range(m):
            prev = [c[i - 1, j - 1]] if i and j else []
            prev += [c[i - 1, j]] if i else []
            prev += [c[i, j - 1]] if j else []
            c[i, j] = d[i, j] + (min(prev) if prev else np.float32(0))
    i, j, steps = n - 1, m - 1, 1
    while i > 0 and j > 0:
        up, left, diag = c[i - 1, j], c[i, j - 1], c[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        steps += 1
    return float(np.float32(c[n - 1, m - 1] / (steps + i + j)))


def _frame_dist(p: np.ndarray, q: np.ndarray, distance: str) -> float:
    if distance == "cosine":
        return math.acos(max(-1.0, min(1.0, float(p @ q)))) / math.pi
    if distance == "euclidean":
        return float(np.sqrt(((p - q) ** 2).sum()))
    kl = lambda s, t: float((s * np.log((s + 1e-6) / (t + 1e-6))).sum())  # noqa: E731
    return kl(p, q) if distance == "kl" else 0.5 * kl(p, q) + 0.5 * kl(q, p)


def test_dtw_matches_python_loop():
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        n, m = torch.randint(1, 9, (2,), generator=gen).tolist()
        d = torch.rand(n, m, generator=gen)
        if _ % 3 == 0:  # ties everywhere
            d = (d * 3).floor()
        got = abx.dtw(d[None], torch.tensor([n]), torch.tensor([m]))
        assert got.item() == pytest.approx(_dtw_loop(d.numpy()), rel=1e-6, abs=1e-7)


def test_dtw_batched_equals_unbatched():
    gen = torch.Generator().manual_seed(1)
    lens = torch.randint(1, 12, (40, 2), generator=gen)
    dist = torch.rand(40, 11, 11, generator=gen)
    batched = abx.dtw(dist, lens[:, 0], lens[:, 1])
    for k, (n, m) in enumerate(lens.tolist()):
        alone = abx.dtw(
            dist[k : k + 1, :n, :m].contiguous(), lens[k : k + 1, 0], lens[k : k + 1, 1]
        )
        assert batched[k].item() == alone.item()


@pytest.mark.parametrize("distance", abx.DISTANCES)
def test_pair_dtw_against_loops_and_batch_sizes(tmp_path, distance):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(2), phone_vectors=False)
    items = abx.load_items(item_file, feat_dir)
    if distance.startswith("kl"):  # KL wants non-negative features
        items.data = items.data.abs()
    rng = np.random.default_rng(3)
    u, v = rng.integers(0, len(items), 60), rng.integers(0, len(items), 60)
    big = abx.pair_dtw(items, u, v, distance)
    one = abx.pair_dtw(items, u, v, distance, cells=1)
    np.testing.assert_allclose(big, one, rtol=1e-5, atol=1e-6)
    data = items.data.double().numpy()
    for k in range(0, 60, 7):
        fu = data[items.starts[u[k]] : items.starts[u[k]] + items.lengths[u[k]]]
        fv = data[items.starts[v[k]] : items.starts[v[k]] + items.lengths[v[k]]]
        d = np.array([[_frame_dist(p, q, distance) for q in fv] for p in fu], dtype=np.float32)
        assert big[k] == pytest.approx(_dtw_loop(d), rel=1e-4, abs=1e-5)


def _brute_force_within(feat_dir: Path, item_file: Path, distance: str) -> float:
    """Within-speaker, within-context error with no subsampling, by plain loops."""
    items = abx.load_items(item_file, feat_dir)
    data = items.data.double().numpy()
    frames = [data[s : s + n] for s, n in zip(items.starts, items.lengths)]
    groups: dict[tuple, list[int]] = {}
    for k in range(len(items)):
        groups.setdefault((items.context[k], items.speaker[k], items.phone[k]), []).append(k)

    def dist(i: int, j: int) -> float:
        d = [[_frame_dist(p, q, distance) for q in frames[j]] for p in frames[i]]
        return _dtw_loop(np.array(d, dtype=np.float32))

    per_pair: dict[tuple, list[float]] = {}
    for (c, s, pa), ga in groups.items():
        for (c2, s2, pb), gb in groups.items():
            if (c2, s2) != (c, s) or pb == pa or len(ga) < 2:
                continue
            wrong = total = 0.0
            for x, a, b in itertools.product(ga, ga, gb):
                if x != a:
                    dxa, dxb = dist(min(x, a), max(x, a)), dist(x, b)
                    wrong += 1.0 if dxa > dxb else 0.5 if dxa == dxb else 0.0
                    total += 1
            per_pair.setdefault((pa, pb), []).append(wrong / total)
    return float(np.mean([np.mean(v) for v in per_pair.values()]))


@pytest.mark.parametrize("distance", abx.DISTANCES)
def test_small_case_exact_under_each_distance(tmp_path, distance):
    rng = np.random.default_rng(4)
    # 2 speakers, context x_y, phones a/b, 2-3 items each; positive features (for KL)
    items, feats = [], {}
    for spk, counts in (("s1", {"a": 3, "b": 2}), ("s2", {"a": 2, "b": 3})):
        for ph, count in counts.items():
            for k in range(count):
                name = f"{spk}{ph}{k}"
                n = int(rng.integers(1, 5))
                feats[name] = rng.random((n, 3)) + 0.05
                items.append((name, "0.00", f"{n / 100 + 0.007:.3f}", ph, "x", "y", spk))
    feat_dir, item_file = write_corpus(tmp_path, items, feats)
    got = abx.score_abx(feat_dir, item_file, ["within"], ["within"], distance=distance)
    expected = _brute_force_within(feat_dir, item_file, distance)
    assert got.scores[0].error == pytest.approx(expected, abs=1e-9)


def test_seed_reproducibility(tmp_path):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(5), phone_vectors=False)
    kw = dict(context_modes=["any"], max_size_group=3, max_x_across=1)
    one = abx.score_abx(feat_dir, item_file, seed=7, **kw)
    assert abx.score_abx(feat_dir, item_file, seed=7, **kw) == one
    other = abx.score_abx(feat_dir, item_file, seed=8, **kw)
    assert [s.error for s in other.scores] != [s.error for s in one.scores]


def test_item_file_errors(tmp_path):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(6), phone_vectors=True)
    lines = item_file.read_text().splitlines()
    bad = tmp_path / "bad.item"
    bad.write_text("\n".join([*lines[:3], "s0_0 0.1 0.2 a b", *lines[3:]]) + "\n")
    with pytest.raises(ScpcError, match=r"bad\.item:4: expected 7 columns"):
        abx.score_abx(feat_dir, bad)
    bad.write_text("\n".join([*lines[:2], "s0_0 0.1 x a b c s0"]) + "\n")
    with pytest.raises(ScpcError, match=r"bad\.item:3: onset and offset must be numbers"):
        abx.score_abx(feat_dir, bad)
    bad.write_text("\n".join([*lines, "ghost 0.1 0.2 a b c s0"]) + "\n")
    with pytest.raises(ScpcError, match="no feature file ghost"):
        abx.score_abx(feat_dir, bad)
    torch.save(torch.zeros(30, 7), feat_dir / "s1_0.pt")
    with pytest.raises(ScpcError, match="features of dimension"):
        abx.score_abx(feat_dir, item_file)


def test_cli_table_csv_and_one_line_errors(tmp_path, capsys):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(7), phone_vectors=True)
    out = tmp_path / "out" / "scores.csv"
    args = [str(feat_dir), str(item_file), "--device", "cpu", "--out", str(out)]
    assert cli.main([*args, "--frame-shift", "0.01"]) == 0
    printed = capsys.readouterr().out
    assert "abx_error_pct" in printed and "across" in printed
    rows = list(csv.DictReader(out.open()))
    assert [(r["speaker_mode"], r["context_mode"]) for r in rows] == [
        ("within", "within"),
        ("across", "within"),
        ("within", "any"),
        ("across", "any"),
    ]
    assert all(float(r["abx_error_pct"]) == 0.0 for r in rows)
    with pytest.raises(SystemExit) as e:
        cli.run(cli.main, [str(tmp_path / "nope"), str(item_file), "--frame-shift", "0.01"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a directory" in err


def test_cli_frame_shift_comes_from_the_checkpoint_or_is_an_error(tmp_path, capsys):
    from scpc.cli import init

    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(7), phone_vectors=True)
    args = [str(feat_dir), str(item_file), "--device", "cpu"]
    with pytest.raises(SystemExit) as e:  # no silent 10 ms default
        cli.run(cli.main, args)
    assert e.value.code == 1
    assert "pass --checkpoint" in capsys.readouterr().err
    ckpt = tmp_path / "fbank.ckpt"  # 10 ms frames, as --frame-shift 0.01
    assert init.main(["frontend", str(ROOT / "conf/feats/fbank-41.json"), str(ckpt)]) == 0
    out = {}
    for name, extra in (
        ("ckpt", ["--checkpoint", str(ckpt)]),
        ("given", ["--frame-shift", "0.01"]),
    ):
        out[name] = tmp_path / f"{name}.csv"
        assert cli.main([*args, *extra, "--out", str(out[name])]) == 0
    assert out["ckpt"].read_text() == out["given"].read_text()
    with pytest.raises(ScpcError, match="no item covers"):  # 80 ms frames: items fall outside
        cli.main([*args, "--frame-shift", "0.08"])


# ----------------------------------------------------------------------------- zrc_abx2


@pytest.fixture(scope="module")
def mini_dev(tmp_path_factory):
    """fbank-80 features of the 24 mini dev utterances numbered 0 and 1, and their items."""
    from scpc.audio import read_audio
    from scpc.frontend import frontend_from_config, load_frontend_config

    root = tmp_path_factory.mktemp("abx_mini")
    lines = (MINI / "abx" / "dev.item").read_text().splitlines()
    keep = [line for line in lines[1:] if int(line.split()[0].split("-")[2]) < 2]
    (root / "dev.item").write_text("\n".join([lines[0], *keep]) + "\n")
    front = frontend_from_config(load_frontend_config(ROOT / "conf" / "feats" / "fbank-80.json"))
    (root / "feats").mkdir()
    for utt in sorted({line.split()[0] for line in keep}):
        spk, chapter, _ = utt.split("-")
        wav = torch.from_numpy(
            read_audio(str(MINI / "LibriSpeech" / "dev" / spk / chapter / f"{utt}.flac"))
        )
        with torch.no_grad():
            feats, n = front(wav[None], torch.tensor([len(wav)]))
        torch.save(feats[0, : int(n[0])].clone(), root / "feats" / f"{utt}.pt")
    return root / "feats", root / "dev.item"


@pytest.mark.slow
def test_agrees_with_zrc_abx2(mini_dev):
    from scpc.eval import libriabx2

    if not libriabx2.available():
        pytest.skip("zerospeech-libriabx2 (zrc_abx2) is not installed")
    feat_dir, item_file = mini_dev
    kw = dict(max_size_group=4, max_x_across=2, seed=3459)
    same = abx.score_abx(feat_dir, item_file, file_order="walk", **kw)
    ours = abx.score_abx(feat_dir, item_file, **kw)
    for spk, ctx in abx.CONDITIONS:
        ref = libriabx2.score(feat_dir, item_file, spk, ctx, **kw)
        assert same.get(spk, ctx).error == pytest.approx(ref, abs=1e-5), (spk, ctx)
        assert abs(ours.get(spk, ctx).error - ref) < 0.005, (spk, ctx)


# ----------------------------------------------------------------------------- CPU DTW, fastabx


def test_compiled_dtw_equals_the_batched_torch_dtw():
    """The CPU kernel (pairs cut out of one shared matrix) and the GPU's anti-diagonal DTW."""
    from scpc.eval.dtw_kernel import dtw_pairs

    gen = torch.Generator().manual_seed(5)
    shared = torch.rand(40, 50, generator=gen)
    shared[:, ::2] = (shared[:, ::2] * 3).floor() / 3  # ties between predecessors
    n = torch.randint(1, 12, (200,), generator=gen)
    m = torch.randint(1, 12, (200,), generator=gen)
    row = torch.randint(0, 29, (200,), generator=gen)
    col = torch.randint(0, 39, (200,), generator=gen)
    got = np.empty(200, dtype=np.float32)
    dtw_pairs(shared.numpy(), row.numpy(), n.numpy(), col.numpy(), m.numpy(), got)
    blocks = torch.stack([shared[r : r + 11, c : c + 11] for r, c in zip(row, col)])
    torch_dtw = abx.dtw(blocks, n, m).numpy()
    np.testing.assert_array_equal(got, torch_dtw)


@pytest.mark.parametrize("distance", abx.DISTANCES)
def test_cpu_blocks_equal_the_padded_gpu_path(tmp_path, distance):
    feat_dir, item_file = synthetic(tmp_path, np.random.default_rng(6), phone_vectors=False)
    items = abx.load_items(item_file, feat_dir)
    if distance.startswith("kl"):
        items.data = items.data.abs()
    rng = np.random.default_rng(7)
    u, v = rng.integers(0, len(items), 500), rng.integers(0, len(items), 500)
    blocks = abx.pair_dtw(items, u, v, distance, device="cpu", cells=4096)  # many blocks
    padded = abx._pair_dtw_padded(items, u, v, distance, torch.device("cpu"), None)
    # the distance matrices come from different GEMM shapes: equal to float rounding, which
    # acos magnifies near a distance of 0 (a frame against itself)
    np.testing.assert_allclose(blocks, padded, rtol=1e-5, atol=1e-4)


def test_full_item_frames_give_fastabx_scores(tmp_path):
    """Golden fixture (tests/fixtures/fastabx): fastabx 0.9.0 without subsampling."""
    import json

    fixture = ROOT / "tests" / "fixtures" / "fastabx"
    expected = json.loads((fixture / "expected.json").read_text())["scores"]
    whole = dict(max_size_group=10**6, max_x_across=10**6)
    full = abx.score_abx(fixture / "feats", fixture / "items.item", item_frames="full", **whole)
    libri = abx.score_abx(fixture / "feats", fixture / "items.item", **whole)
    for spk, ctx in abx.CONDITIONS:
        want = expected[f"{spk}/{ctx}"]
        assert full.get(spk, ctx).error == pytest.approx(want, abs=1e-6), (spk, ctx)
        # Libri-Light's frames (one fewer per item) give other scores on the same data
        assert abs(libri.get(spk, ctx).error - want) > 2e-4, (spk, ctx)
    out = tmp_path / "scores.csv"
    args = [str(fixture / "feats"), str(fixture / "items.item"), "--frame-shift", "0.01"]
    args += ["--max-size-group", "1000000", "--max-x-across", "1000000", "--device", "cpu"]
    assert cli.main([*args, "--item-frames", "full", "--out", str(out)]) == 0
    with open(out) as f:
        rows = {(r["speaker_mode"], r["context_mode"]): r for r in csv.DictReader(f)}
    for spk, ctx in abx.CONDITIONS:
        want = 100 * expected[f"{spk}/{ctx}"]
        assert float(rows[(spk, ctx)]["abx_error_pct"]) == pytest.approx(want, abs=1e-4)


def test_full_item_frames_keep_the_last_frame_and_round_in_decimal():
    # 10 ms frames: an item from 20 to 50 ms holds the centres 25, 35, 45 ms (frames 2-4)
    assert abx.frame_range(0.02, 0.05, 100, 100.0) == (2, 4)
    assert abx.frame_range(0.02, 0.05, 100, 100.0, "full") == (2, 5)
    # half-way times: 100 x 0.035 - 0.5 is 3.0000000000000004 in binary floating point and
    # 100 x 0.145 - 0.5 is 13.999999999999998; in decimal they are 3 and 14
    assert abx.frame_range(0.035, 0.145, 100, 100.0) == (4, 13)
    assert abx.frame_range(0.035, 0.145, 100, 100.0, "full") == (3, 15)
    assert abx.frame_range(0.0, 0.5, 10, 100.0, "full") == (0, 10)  # clipped to the features
    with pytest.raises(ScpcError, match="unknown item frames"):
        abx.load_items(MINI / "abx" / "dev.item", MINI, item_frames="half")
