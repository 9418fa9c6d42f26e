"""Front-ends: the torch STFT filter banks reproduce pydrobert-speech; raw; config errors."""

import json

import numpy as np
import pytest
import torch
from conftest import CORPUS, ROOT
from pydrobert.speech.compute import ShortTimeFourierTransformFrameComputer

from scpc.audio import read_audio
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config, load_frontend_config

FEATS = ROOT / "conf" / "feats"
LENGTHS = [0, 1, 80, 159, 200, 201, 239, 240, 241, 319, 320, 400, 401, 559, 560, 1000, 3217]


def pydrobert(config: dict, signal: np.ndarray) -> np.ndarray:
    kwargs = {k: v for k, v in config.items() if k != "name"}
    return ShortTimeFourierTransformFrameComputer(**kwargs).compute_full(signal)


def conf(name: str) -> dict:
    return json.loads((FEATS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def speech() -> list[np.ndarray]:
    files = sorted((CORPUS / "LibriSpeech" / "dev").rglob("*.flac"))[:2]
    return [read_audio(str(f)) for f in files]


@pytest.mark.parametrize("name,size", [("raw", 1), ("fbank-41", 41), ("fbank-80", 80)])
def test_shipped_configs(name, size):
    config = load_frontend_config(FEATS / f"{name}.json")
    fe = frontend_from_config(config)
    assert fe.config == config and fe.feat_size == size
    assert fe.frame_shift == (1 if name == "raw" else 160)
    assert fe.state_dict() == {}  # rebuilt from the config, nothing to store


@pytest.mark.parametrize("name", ["fbank-41", "fbank-80"])
def test_fbank_matches_pydrobert_on_speech(name, speech):
    config = conf(name)
    fe = frontend_from_config(config)
    for x in speech:
        ref = pydrobert(config, x.astype(np.float64))
        feats, lens = fe(torch.from_numpy(x)[None], torch.tensor([len(x)]))
        assert feats.dtype == torch.float32 and int(lens[0]) == len(ref) > 100
        np.testing.assert_allclose(feats[0].numpy(), ref, atol=1e-5, rtol=0)


VARIANTS = [
    {},
    {"frame_style": "causal"},
    {"kaldi_shift": True},
    {"pad_to_nearest_power_of_two": False, "window_function": "hamming"},
    {"use_power": True, "use_log": False},
    {"bank": {"name": "tri", "scaling_function": "mel", "num_filts": 23, "low_hz": 100}},
    {"frame_length_ms": 25.5, "frame_shift_ms": 12.5, "window_function": {"name": "blackman"}},
]


@pytest.mark.parametrize("change", VARIANTS)
def test_options_and_lengths_match_pydrobert_exactly(change):
    """In float64 every frame, count and option agrees to rounding error."""
    fe = frontend_from_config(dict(conf("fbank-41"), **change)).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(LENGTHS), max(LENGTHS))) * 0.1
    for i, n in enumerate(LENGTHS):
        x[i, n:] = 0
    feats, lens = fe(torch.from_numpy(x), torch.tensor(LENGTHS))
    for i, n in enumerate(LENGTHS):
        ref = pydrobert(fe.config, x[i, :n].copy())
        assert len(ref) == int(lens[i]) == fe.num_frames(n)
        np.testing.assert_allclose(feats[i, : len(ref)].numpy(), ref, atol=1e-9, rtol=0)
        assert not feats[i, len(ref) :].any()


def test_num_frames_on_ints_and_tensors():
    fe = frontend_from_config(conf("fbank-80"))
    expected = [0 if n < 201 else (n + 80) // 160 for n in LENGTHS]
    assert [fe.num_frames(n) for n in LENGTHS] == expected
    assert fe.num_frames(torch.tensor(LENGTHS)).tolist() == expected


ONLINE_MEL = {"name": "online_mel", "n_mels": 40, "log": True, "delta": 2, "cmvn": True}


@pytest.mark.parametrize("config", [conf("fbank-41"), ONLINE_MEL], ids=["stft", "online_mel"])
def test_padded_batch_equals_each_utterance_alone(speech, config):
    fe = frontend_from_config(config)
    sigs = [speech[0][:16000], speech[1], speech[0][:230], speech[0][:100]]
    wav = torch.zeros(len(sigs), max(len(s) for s in sigs))
    for i, s in enumerate(sigs):
        wav[i, : len(s)] = torch.from_numpy(s)
    wav[2, 230:] = 0.5  # garbage past the length must not leak in either
    feats, lens = fe(wav, torch.tensor([len(s) for s in sigs]))
    for i, s in enumerate(sigs):
        alone, n = fe(torch.from_numpy(s)[None], torch.tensor([len(s)]))
        assert int(n[0]) == int(lens[i]) == fe.num_frames(len(s))
        torch.testing.assert_close(feats[i, : lens[i]], alone[0], atol=1e-6, rtol=0)
        assert not feats[i, lens[i] :].any()
    assert int(lens[3]) == 0


def test_input_scale_multiplies_the_waveform_first():
    wav = torch.rand(1, 4000) - 0.5
    raw = frontend_from_config({"name": "raw", "input_scale": 32768})
    assert torch.equal(raw(wav, torch.tensor([4000]))[0][0, :, 0], wav[0] * 32768)
    plain = frontend_from_config(conf("fbank-80"))
    scaled = frontend_from_config({**conf("fbank-80"), "input_scale": 2.0})
    # a magnitude filter bank scales linearly: log features move by log 2 (above the floor)
    gap = scaled(wav, torch.tensor([4000]))[0] - plain(wav, torch.tensor([4000]))[0]
    torch.testing.assert_close(gap, torch.full_like(gap, float(np.log(2))), atol=1e-5, rtol=0)
    with pytest.raises(ScpcError, match="'input_scale' must be a positive number"):
        frontend_from_config({"name": "raw", "input_scale": 0})


def test_online_mel_sizes_and_frames():
    fe = frontend_from_config(ONLINE_MEL)
    assert fe.feat_size == 120 and fe.frame_shift == 160
    # a centred STFT: 1 + S // hop frames, none while reflection is impossible (S <= n_fft/2)
    assert fe.num_frames(torch.tensor([200, 201, 16000])).tolist() == [0, 2, 101]
    linear = frontend_from_config({"name": "online_mel", "feat_type": "linear"})
    assert linear.feat_size == 201
    with pytest.raises(ScpcError, match="'feat_type' of 'online_mel' must be mel or linear"):
        frontend_from_config({"name": "online_mel", "feat_type": "mfcc"})


def test_raw_is_the_identity():
    fe = frontend_from_config({"name": "raw"})
    wav = torch.rand(2, 7)
    feats, lens = fe(wav, torch.tensor([7, 3]))
    assert feats.shape == (2, 7, 1) and lens.tolist() == [7, 3]
    assert torch.equal(feats[0, :, 0], wav[0]) and torch.equal(feats[1, :3, 0], wav[1, :3])
    assert not feats[1, 3:].any()
    assert fe.num_frames(5) == 5 and fe.num_frames(torch.tensor([4])).tolist() == [4]


def test_differentiable_and_empty_batch():
    fe = frontend_from_config(conf("fbank-80"))
    wav = (torch.randn(1, 4000) * 0.1).requires_grad_()
    fe(wav, torch.tensor([4000]))[0].sum().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all()
    feats, lens = fe(torch.zeros(2, 50), torch.tensor([50, 10]))
    assert feats.shape == (2, 0, 80) and lens.tolist() == [0, 0]


@pytest.mark.parametrize(
    "change,named",
    [
        ({"name": "mfcc"}, "'mfcc'"),
        ({"frame_lenght_ms": 25}, "'frame_lenght_ms'"),
        ({"bank": {"name": "gabor"}}, "'gabor'"),
        ({"bank": {"name": "fbank", "numfilts": 40}}, "'numfilts'"),
        ({"bank": {"name": "fbank", "analytic": True}}, "'analytic'"),
        ({"bank": {"name": "fbank", "sampling_rate": 8000}}, "'sampling_rate'"),
        ({"bank": {"name": "fbank", "high_hz": 9000}}, "high_hz"),
        ({"window_function": "gamma"}, "'gamma'"),
        ({"frame_style": "causal", "window_function": None}, "'window_function'"),
        ({"frame_style": "middle"}, "'frame_style'"),
        ({"include_energy": "yes"}, "'include_energy'"),
    ],
)
def test_bad_configs_name_the_problem(change, named):
    config = {k: v for k, v in dict(conf("fbank-41"), **change).items() if v is not None}
    with pytest.raises(ScpcError, match=named) as e:
        frontend_from_config(config)
    assert "\n" not in str(e.value)


def test_raw_takes_no_options_and_files_are_checked(tmp_path):
    with pytest.raises(ScpcError, match="'bank'"):
        frontend_from_config({"name": "raw", "bank": "fbank"})
    with pytest.raises(ScpcError, match="no such"):
        load_frontend_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScpcError, match=f"{bad}: not a valid JSON"):
        load_frontend_config(bad)
    bad.write_text('{"name": "stft"}')
    with pytest.raises(ScpcError, match=f"{bad}: .*'bank'"):
        load_frontend_config(bad)


def test_mfcc_is_the_orthonormal_dct_of_the_log_filter_bank():
    import math

    from scpc.frontend.mfcc import dct_matrix

    m = dct_matrix(8, 8)
    torch.testing.assert_close(m.T @ m, torch.eye(8, dtype=torch.float64))
    config = load_frontend_config(ROOT / "conf" / "feats" / "mfcc-13.json")
    mfcc = frontend_from_config(config)
    fbank = frontend_from_config(config["fbank"])
    wav = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    lens = torch.tensor([8000])
    ceps, frames = mfcc(wav, lens)
    logmel, _ = fbank(wav, lens)
    assert mfcc.feat_size == 13 and ceps.shape == (1, int(frames[0]), 13)
    x = logmel[0, 7].double()
    n = len(x)
    for k in (0, 1, 12):  # DCT-II, orthonormal, written out
        scale = math.sqrt((1 if k == 0 else 2) / n)
        want = scale * sum(x[i] * math.cos(math.pi / n * (i + 0.5) * k) for i in range(n))
        assert abs(float(ceps[0, 7, k]) - float(want)) < 1e-4
    bad = dict(config, num_ceps=41)
    with pytest.raises(ScpcError, match="num_ceps"):
        frontend_from_config(bad)
