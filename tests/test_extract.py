"""scpc-a2r, scpc-pca, scpc-info: layouts, formats, layers, frame rule, batching, resume,
bad audio, PCA maths and compatibility checks. Tiny raw-audio models, a few seconds in all."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_script

from scpc import extract
from scpc.cli import a2r, info
from scpc.cli import pca as pca_cli
from scpc.errors import ScpcError
from scpc.modelinfo import describe, frame_rule
from scpc.models import (
    ConvEncoder,
    EncoderSequence,
    FeedForwardEncoder,
    RecurrentEncoder,
    inference,
)
from scpc.models.checkpoint import load_inference_checkpoint, save_inference_checkpoint
from scpc.models.pca import Pca, fit, load_pca

SR = 16000
LENGTHS = [1, 159, 160, 161, 2000, 4800, 8000, 12345]


def expected_frames(num_samples: int, factor: int, offset: int, min_samples: int = 0) -> int:
    """The frame rule scpc-info reports: (S + offset) // factor frames from min_samples on."""
    return 0 if num_samples < min_samples else max(0, (num_samples + offset) // factor)


def make_ckpt(path, *encoders, provenance=None):
    torch.manual_seed(0)
    enc = EncoderSequence(*encoders) if len(encoders) > 1 else encoders[0]
    save_inference_checkpoint(path, enc, {"name": "raw"}, provenance)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """conv (16) then a 2-layer GRU (16): three hidden states of 16 channels."""
    path = tmp_path_factory.mktemp("model") / "best.ckpt"
    return make_ckpt(
        path,
        ConvEncoder(1, 16),
        RecurrentEncoder(16, 16, 2),
        provenance={"model": "cpc.tiny", "version": 2, "git_commit": "0123abc"},
    )


@pytest.fixture(scope="module")
def model(ckpt):
    return load_inference_checkpoint(ckpt)


def write_wav(path, n, sr=SR, seed=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n if seed is None else seed)
    sf.write(path, rng.uniform(-0.5, 0.5, n).astype(np.float32), sr, subtype="FLOAT")
    return path


@pytest.fixture
def in_dir(tmp_path):
    root = tmp_path / "in"
    for rel, n in [("a/x.wav", 4800), ("a/b/y.wav", 8000), ("z.wav", 12345), ("a/b/w.wav", 161)]:
        write_wav(root / rel, n)
    (root / "a" / "notes.txt").write_text("not audio\n")
    return root


def outputs(root, ext=".pt"):
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"*{ext}"))


def test_in_dir_mirrors_layout(in_dir, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert a2r.main([str(in_dir), str(ckpt), str(out)]) == 0
    assert outputs(out) == ["a/b/w.pt", "a/b/y.pt", "a/x.pt", "z.pt"]
    for rel, n in [("a/x.pt", 4800), ("a/b/y.pt", 8000), ("z.pt", 12345), ("a/b/w.pt", 161)]:
        rep = torch.load(out / rel, weights_only=True)
        assert rep.dtype == torch.float32 and rep.shape == ((n + 1) // 160, 16)
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "4 files written" in summary[0] and str(out) in summary[0]
    assert "real-time factor" in summary[0]


def test_flac_suffix(tmp_path, ckpt):
    (tmp_path / "in" / "s").mkdir(parents=True)
    sf.write(tmp_path / "in" / "s" / "u1.flac", np.zeros(3200), SR)
    write_wav(tmp_path / "in" / "s" / "ignored.wav", 3200)
    out = tmp_path / "out"
    a2r.main(["--in-dir", str(tmp_path / "in"), "--audio-suffix", ".flac", str(ckpt), str(out)])
    assert outputs(out) == ["s/u1.pt"]


def test_in_map_pipe_and_numpy(in_dir, ckpt, tmp_path):
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text(f"u2 cat {in_dir / 'z.wav'} |\nu1 {in_dir / 'a' / 'x.wav'}\n")
    out_pt, out_np = tmp_path / "pt", tmp_path / "np"
    a2r.main(["--in-map", str(wav_scp), str(ckpt), str(out_pt)])
    a2r.main(["--numpy", "--in-map", str(wav_scp), str(ckpt), str(out_np)])
    assert outputs(out_pt) == ["u1.pt", "u2.pt"] and outputs(out_np, ".npy") == ["u1.npy", "u2.npy"]
    for u in ("u1", "u2"):
        x = np.load(out_np / f"{u}.npy")
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, torch.load(out_pt / f"{u}.pt").numpy())


def test_data_dir_segments(tmp_path):
    wav = write_wav(tmp_path / "rec.wav", 3 * SR)
    (tmp_path / "wav.scp").write_text(f"rec {wav}\n")
    (tmp_path / "segments").write_text("rec-a rec 0.0 1.0\nrec-b rec 1.5 2.75\n")
    utts = extract.read_data_dir(tmp_path)
    assert [u.uttid for u in utts] == ["rec-a", "rec-b"]
    assert [len(u.read(extract.ReadOptions())) for u in utts] == [SR, 20000]


def test_layers(in_dir, ckpt, tmp_path):
    a2r.main(["--layer", "all", str(in_dir), str(ckpt), str(tmp_path / "all")])
    a2r.main(["--layer", "1", str(in_dir), str(ckpt), str(tmp_path / "l1")])
    a2r.main([str(in_dir), str(ckpt), str(tmp_path / "out")])
    stacked = torch.load(tmp_path / "all" / "z.pt")
    assert stacked.shape == (3, 12346 // 160, 16)
    torch.testing.assert_close(stacked[1], torch.load(tmp_path / "l1" / "z.pt"))
    torch.testing.assert_close(stacked[-1], torch.load(tmp_path / "out" / "z.pt"))
    with pytest.raises(ScpcError, match="3 layers"):
        a2r.main(["--layer", "3", str(in_dir), str(ckpt), str(tmp_path / "bad")])


def test_layer_all_needs_equal_sizes(in_dir, tmp_path):
    ckpt = make_ckpt(tmp_path / "m.ckpt", ConvEncoder(1, 16), RecurrentEncoder(16, 8))
    with pytest.raises(ScpcError, match=r"\[16, 8\]"):
        a2r.main(["--layer", "all", str(in_dir), str(ckpt), str(tmp_path / "o")])


def test_frame_rule_every_length(model, tmp_path):
    """T' = (S + 1) // 160 for the conv encoder over raw audio, for S = 1 ... 3000; the GRU
    after it keeps the frame count, so the exhaustive sweep runs the conv alone (faster)."""
    assert model.downsampling_factor == 160 and frame_rule(model)[0] == 1
    model = load_inference_checkpoint(make_ckpt(tmp_path / "conv.ckpt", ConvEncoder(1, 16)))
    assert frame_rule(model)[0] == 1
    wavs = [np.random.default_rng(s).uniform(-1, 1, s).astype(np.float32) for s in range(1, 3001)]
    got = {}
    for batch in inference.plan_batches([len(w) for w in wavs], 500 * 3000):
        for i, rep in zip(batch, inference.encode(model, [wavs[i] for i in batch], -1, "cpu")):
            got[len(wavs[i])] = rep.shape[0]
    assert all(got[s] == expected_frames(s, 160, 1) == (s + 1) // 160 for s in range(1, 3001))


def test_frame_rule_of_filter_bank_models(tmp_path):
    """fbank-80 + an encoder: T' = (S + 80) // 160 from one whole frame (201 samples) on, as
    scpc-info states it; checked through the extraction path for every S up to 1200."""
    from scpc.frontend import load_frontend_config
    from scpc.modelinfo import frame_rule

    fbank = load_frontend_config(Path(__file__).parents[1] / "conf" / "feats" / "fbank-80.json")
    path = tmp_path / "fb.ckpt"
    save_inference_checkpoint(path, FeedForwardEncoder(80, 8), fbank)
    model = load_inference_checkpoint(path)
    assert frame_rule(model) == (80, 201)
    wavs = [np.random.default_rng(s).uniform(-1, 1, s).astype(np.float32) for s in range(201, 1201)]
    for batch in inference.plan_batches([len(w) for w in wavs], 200 * 1200):
        for i, rep in zip(batch, inference.encode(model, [wavs[i] for i in batch], -1, "cpu")):
            assert rep.shape[0] == expected_frames(len(wavs[i]), 160, 80, 201)


def test_filter_bank_then_recurrent_model_takes_clips_without_a_frame(tmp_path):
    """A clip under one filter-bank frame has no frames; a recurrent encoder cannot take an
    empty sequence, so the model gives it (0, C) beside the others (and scpc-info probes)."""
    from scpc.frontend import load_frontend_config
    from scpc.modelinfo import frame_rule

    fbank = load_frontend_config(Path(__file__).parents[1] / "conf" / "feats" / "fbank-80.json")
    path = tmp_path / "fb_gru.ckpt"
    save_inference_checkpoint(path, RecurrentEncoder(80, 8, 1), fbank)
    model = load_inference_checkpoint(path)
    assert frame_rule(model) == (80, 201)
    rng = np.random.default_rng(0)
    wavs = [rng.uniform(-1, 1, n).astype(np.float32) for n in (100, 3000, 200)]
    reps = inference.encode(model, wavs, -1, "cpu")
    assert [tuple(r.shape) for r in reps] == [(0, 8), (19, 8), (0, 8)]
    assert torch.equal(reps[1], inference.encode(model, wavs[1:2], -1, "cpu")[0])
    assert [tuple(r.shape) for r in inference.encode(model, [wavs[0]], -1, "cpu")] == [(0, 8)]


def test_batched_equals_single(model):
    rng = np.random.default_rng(0)
    wavs = [rng.uniform(-1, 1, n).astype(np.float32) for n in (161, 800, 3333, 9000, 16000)]
    for layer in (-1, 0, "all"):
        batched = inference.encode(model, wavs, layer, "cpu")
        for w, b in zip(wavs, batched):
            torch.testing.assert_close(b, inference.encode(model, [w], layer, "cpu")[0])
    with torch.inference_mode():  # also against the bare model, without the minimum padding
        for w, b in zip(wavs, inference.encode(model, wavs, -1, "cpu")):
            alone = model(torch.from_numpy(w)[None], torch.tensor([len(w)])).output[0]
            torch.testing.assert_close(b, alone, rtol=1e-5, atol=1e-6)


def test_plan_batches_bound_padding():
    lengths = [5, 100, 7, 60, 100, 3]
    batches = inference.plan_batches(lengths, 200)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in batches)
    assert inference.plan_batches([500, 10], 100) == [[0], [1]]  # too long: alone


@pytest.mark.slow
def test_batch_size_and_nj_do_not_change_outputs(in_dir, ckpt, tmp_path):
    a2r.main(["--batch-seconds", "0.01", str(in_dir), str(ckpt), str(tmp_path / "one")])
    a2r.main(["--nj", "2", str(in_dir), str(ckpt), str(tmp_path / "two")])
    for rel in outputs(tmp_path / "one"):
        torch.testing.assert_close(
            torch.load(tmp_path / "one" / rel), torch.load(tmp_path / "two" / rel)
        )
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")


def test_amp_bf16_autocasts_and_writes_float32(in_dir, ckpt, tmp_path):
    """--amp bf16 runs on CPU too (how the autocast path is tested without a GPU)."""
    a2r.main([str(in_dir), str(ckpt), str(tmp_path / "fp32")])
    a2r.main(["--amp", "bf16", str(in_dir), str(ckpt), str(tmp_path / "bf16")])
    assert outputs(tmp_path / "bf16") == outputs(tmp_path / "fp32")
    for rel in outputs(tmp_path / "fp32"):
        a, b = torch.load(tmp_path / "fp32" / rel), torch.load(tmp_path / "bf16" / rel)
        assert b.dtype == torch.float32 and b.shape == a.shape
        assert not torch.equal(a, b)  # rounded inside: autocast was on
        torch.testing.assert_close(b, a, atol=0.05, rtol=0.05)


def test_job_shares_cover_the_inputs_once(in_dir, ckpt, tmp_path, capsys):
    a2r.main([str(in_dir), str(ckpt), str(tmp_path / "all")])
    written = []
    for job in (1, 2, 3):
        a2r.main(
            ["--job", str(job), "--num-jobs", "3", str(in_dir), str(ckpt), str(tmp_path / "s")]
        )
        written.append(int(capsys.readouterr().out.split("scpc-a2r: ")[-1].split()[0]))
    assert written == [1, 1, 2]  # 4 inputs in 3 contiguous, balanced shares
    assert outputs(tmp_path / "s") == outputs(tmp_path / "all")
    for rel in outputs(tmp_path / "all"):
        assert torch.equal(torch.load(tmp_path / "all" / rel), torch.load(tmp_path / "s" / rel))
    with pytest.raises(ScpcError, match="--job 4 must lie in 1..3"):
        a2r.main(["--job", "4", "--num-jobs", "3", str(in_dir), str(ckpt), str(tmp_path / "x")])
    with pytest.raises(SystemExit):  # one without the other
        a2r.main(["--job", "1", str(in_dir), str(ckpt), str(tmp_path / "x")])


@pytest.mark.slow
def test_make_reps_runs_jobs_through_the_launcher_and_resumes(tmp_path, ckpt):
    scp = tmp_path / "wav.scp"
    scp.write_text(
        "".join(f"u{i} {write_wav(tmp_path / f'u{i}.wav', 3000 + 100 * i)}\n" for i in range(5))
    )
    out = tmp_path / "reps"
    first = run_script("steps/make_reps.sh", "--nj", "2", "--a2r-opts", "--numpy", scp, ckpt, out)
    assert (
        first.stdout.strip()
        == f"{out}: 5 files written, 0 already present (0.000 h of audio) by 2 jobs"
    )
    assert sorted(p.name for p in out.glob("*.npy")) == [f"u{i}.npy" for i in range(5)]
    assert "# Ended (code 0)" in (out / "log" / "a2r.2.log").read_text()
    (out / "u4.npy").unlink()  # an interrupted run: only what is missing is redone
    again = run_script("steps/make_reps.sh", "--nj", "2", "--a2r-opts", "--numpy", scp, ckpt, out)
    assert "1 files written, 4 already present" in again.stdout
    bad = run_script("steps/make_reps.sh", tmp_path / "none.scp", ckpt, out, check=False)
    assert bad.returncode == 1 and "no such file" in bad.stderr


def test_resume_skips_existing(in_dir, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    torch.save(torch.zeros(1), out / "a" / "x.pt")  # "finished earlier": must be kept
    a2r.main([str(in_dir), str(ckpt), str(out)])
    assert torch.load(out / "a" / "x.pt").shape == (1,)
    assert "3 files written, 1 already present" in capsys.readouterr().out
    a2r.main([str(in_dir), str(ckpt), str(out)])
    assert "0 files written, 4 already present" in capsys.readouterr().out
    a2r.main(["--overwrite", str(in_dir), str(ckpt), str(out)])
    assert torch.load(out / "a" / "x.pt").shape == (30, 16)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files


@pytest.mark.slow
def test_corrupt_audio_one_line(in_dir, ckpt, tmp_path):
    bad = in_dir / "a" / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    proc = run_script("scpc-a2r", in_dir, ckpt, tmp_path / "out", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("scpc-a2r: ") and str(bad) in lines[0]


def test_wrong_sample_rate(tmp_path, ckpt):
    wav = write_wav(tmp_path / "in" / "u8k.wav", 4000, sr=8000)
    with pytest.raises(ScpcError, match=f"{wav}: sample rate is 8000 Hz"):
        a2r.main([str(tmp_path / "in"), str(ckpt), str(tmp_path / "out")])
    a2r.main(["--resample", str(tmp_path / "in"), str(ckpt), str(tmp_path / "out")])
    assert torch.load(tmp_path / "out" / "u8k.pt").shape == ((8000 + 1) // 160, 16)


def test_nan_output_names_utterance(in_dir, tmp_path):
    torch.manual_seed(0)
    enc = ConvEncoder(1, 16)
    with torch.no_grad():
        enc.convs[0].bias.fill_(float("nan"))
    save_inference_checkpoint(tmp_path / "nan.ckpt", enc, {"name": "raw"})
    with pytest.raises(ScpcError, match="NaN"):
        a2r.main([str(in_dir), str(tmp_path / "nan.ckpt"), str(tmp_path / "out")])
    assert outputs(tmp_path / "out") == []


def test_pca_fit_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 6)) + 100.0  # large mean
    mean, basis, var = fit(torch.from_numpy(x).split(700), 4)  # streamed in uneven blocks
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(values)[::-1][:4]
    vectors = vectors[:, order]
    vectors *= np.sign(vectors[np.abs(vectors).argmax(0), range(4)])
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), values[order], rtol=1e-9)
    np.testing.assert_allclose(basis.numpy(), vectors, atol=1e-9)
    pca = Pca(mean, basis, var, -1, 6, "x")
    y = pca.apply(torch.from_numpy(x).float())
    assert y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), (x - x.mean(0)) @ vectors, atol=1e-3)
    assert abs(float(y.double().mean(0).abs().max())) < 1e-3  # centred: the mean is removed


def test_pca_cli_and_a2r(in_dir, ckpt, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(
        "".join(f"u{i} {p}\n" for i, p in enumerate(sorted(in_dir.rglob("*.wav"))))
    )
    out = tmp_path / "pca_4.pt"
    assert pca_cli.main(["--frames-per-utt", "0", str(data), str(ckpt), "4", str(out)]) == 0
    assert "4 of 16 dims" in capsys.readouterr().out
    d = torch.load(out, weights_only=True)
    assert set(d) == {"mean", "basis", "explained_variance", "layer", "input_size", "checkpoint"}
    assert d["basis"].shape == (16, 4) and d["mean"].shape == (16,) and d["layer"] == -1
    a2r.main(["--pca-file", str(out), str(in_dir), str(ckpt), str(tmp_path / "red")])
    a2r.main([str(in_dir), str(ckpt), str(tmp_path / "full")])
    pca = load_pca(out)
    for rel in outputs(tmp_path / "full"):
        red = torch.load(tmp_path / "red" / rel)
        assert red.shape[1] == 4
        full = torch.load(tmp_path / "full" / rel).double()
        torch.testing.assert_close(red, ((full - pca.mean) @ pca.basis).float())
    # seeded frame sampling: the same seed gives the same file
    pca_cli.main(["--seed", "3", "--frames-per-utt", "5", str(data), str(ckpt), "2", str(out)])
    first = torch.load(out)["basis"]
    pca_cli.main(["--seed", "3", "--frames-per-utt", "5", str(data), str(ckpt), "2", str(out)])
    torch.testing.assert_close(first, torch.load(out)["basis"])
    # refusals
    with pytest.raises(ScpcError, match="layer -1"):
        a2r.main(
            ["--layer", "0", "--pca-file", str(out), str(in_dir), str(ckpt), str(tmp_path / "x")]
        )
    other = make_ckpt(
        tmp_path / "other.ckpt", ConvEncoder(1, 16), RecurrentEncoder(16, 16, 2, "lstm")
    )
    with pytest.raises(ScpcError, match="different checkpoint"):
        a2r.main(["--pca-file", str(out), str(in_dir), str(other), str(tmp_path / "x")])
    with pytest.raises(ScpcError, match=r"\[1, 16\]"):
        pca_cli.main([str(data), str(ckpt), "17", str(tmp_path / "p.pt")])
    with pytest.raises(ScpcError, match="too few"):
        pca_cli.main(["--frames-per-utt", "2", str(data), str(ckpt), "8", str(tmp_path / "p.pt")])


def test_pca_size_mismatch_refused(in_dir, tmp_path):
    ckpt = make_ckpt(tmp_path / "m.ckpt", ConvEncoder(1, 16), RecurrentEncoder(16, 8))
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text(f"z {in_dir / 'z.wav'}\n")
    pca_cli.main(["--layer", "0", "--in-map", str(wav_scp), str(ckpt), "2", str(tmp_path / "p.pt")])
    d = torch.load(tmp_path / "p.pt")
    d["layer"] = -1  # pretend it was fit on the output, which has 8 channels, not 16
    torch.save(d, tmp_path / "p.pt")
    with pytest.raises(ScpcError, match="takes 16 channels"):
        a2r.main(
            ["--pca-file", str(tmp_path / "p.pt"), str(in_dir), str(ckpt), str(tmp_path / "o")]
        )


def test_info(ckpt, tmp_path, capsys, monkeypatch):
    assert info.main([str(ckpt)]) == 0
    lines = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    expected = {
        "feat_type": "raw",
        "feat_size": "1",
        "output_size": "16",
        "downsampling_factor": "160",
        "frame_offset": "1",
        "layers": "3",
        "layer_sizes": "16,16,16",
        "model": "cpc.tiny",
        "version": "2",
        "git_commit": "0123abc",
    }
    assert {k: lines[k] for k in expected} == expected
    assert int(lines["num_params"]) == sum(
        p.numel() for p in load_inference_checkpoint(ckpt).parameters()
    )
    assert describe(ckpt)["num_params"] == int(lines["num_params"])
    # from another working directory, to a file
    monkeypatch.chdir(tmp_path)
    info.main([str(ckpt), "info.txt"])
    assert "downsampling_factor 160" in " ".join((tmp_path / "info.txt").read_text().split())


def test_bad_checkpoint_names_file(tmp_path):
    (tmp_path / "best.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ScpcError, match=f"{tmp_path / 'best.ckpt'}: not a readable checkpoint"):
        info.main([str(tmp_path / "best.ckpt")])


@pytest.mark.slow
def test_clis_work_from_best_ckpt_alone_in_any_directory(in_dir, ckpt, tmp_path):
    """A copied checkpoint, relative paths, and a working directory outside the repository."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "model.ckpt").write_bytes(ckpt.read_bytes())
    info_out = run_script("scpc-info", "model.ckpt", cwd=work).stdout
    assert "downsampling_factor 160" in " ".join(info_out.split())
    run_script("scpc-a2r", in_dir, "model.ckpt", "reps", cwd=work)
    assert sorted(p.relative_to(work / "reps") for p in (work / "reps").rglob("*.pt")) == sorted(
        p.relative_to(in_dir).with_suffix(".pt") for p in in_dir.rglob("*.wav")
    )
