"""scpc.hub: scpc checkpoints as s3prl upstreams (the contract of s3prl's UpstreamExpert)."""

import json
import os
import subprocess
import sys
import textwrap
import types

import pytest
import torch
from conftest import ROOT

import scpc.hub.__main__ as launcher
from scpc import hub
from scpc.cli import init
from scpc.errors import ScpcError
from scpc.frontend import load_frontend_config
from scpc.hub import UpstreamExpert, download, register, scpc_custom, scpc_local, scpc_url
from scpc.models.checkpoint import checkpoint_id, save_inference_checkpoint
from scpc.models.encoders import (
    CausalSelfAttentionEncoder,
    ConvEncoder,
    EncoderSequence,
    RecurrentEncoder,
)
from scpc.models.pca import Pca, fit

TOLERABLE_SEQLEN_DIFF = 5  # s3prl's upstream/interfaces.py: |T - round(max_len / rate)| < 5
FEATS = ROOT / "conf" / "feats"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # these models are tiny: on a busy 2-core machine a second thread only waits (10x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Small checkpoints: CPC-like (conv 32 then a 2-layer LSTM 16, raw audio: layers of two
    sizes), a causal transformer over 80 filter banks, and filter banks alone (scpc-init)."""
    d = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    cpc = EncoderSequence(
        ConvEncoder(1, 32, norm="channel"), RecurrentEncoder(32, 16, num_layers=2, cell="lstm")
    )
    save_inference_checkpoint(d / "cpc.ckpt", cpc, {"name": "raw"})
    csa = CausalSelfAttentionEncoder(80, num_layers=2, num_heads=4, dim_feedforward=64)
    save_inference_checkpoint(d / "csa.ckpt", csa, load_frontend_config(FEATS / "fbank-80.json"))
    init.main(["frontend", str(FEATS / "fbank-80.json"), str(d / "fbank.ckpt")])
    return {name: str(d / f"{name}.ckpt") for name in ("cpc", "csa", "fbank")}


@pytest.fixture(scope="module")
def cpc(ckpts):
    return UpstreamExpert(ckpts["cpc"])


def noise(n, seed=0, scale=0.1):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * scale


def test_forward_gives_one_equal_shape_tensor_per_layer(cpc):
    wavs = [noise(16000), noise(5, 1), noise(7000, 2)]
    out = cpc(wavs)
    hs = out["hidden_states"]
    assert isinstance(hs, list) and len(hs) == 2  # the LSTM layers; the conv layer is 32-dim
    assert all(isinstance(h, torch.Tensor) and h.dtype == torch.float32 for h in hs)
    assert {tuple(h.shape) for h in hs} == {(3, 100, 16)}
    assert out["last_hidden_state"] is hs[-1]
    assert out["hidden_state_0"] is hs[0] and out["hidden_state_1"] is hs[1]


def test_frames_follow_the_checkpoint_rule_within_one_of_s3prls_expectation(ckpts):
    # (name, frame offset, shortest input with a frame), as scpc-info reports them
    rules = {"cpc": (1, 159), "csa": (80, 201), "fbank": (80, 201)}
    g = torch.Generator().manual_seed(0)
    lengths = [1, 2, 3, 50, 158, 159, 160, 161, 200, 201, 202, 239, 240, 241, 319, 320, 321]
    lengths += [479, 480, 481, 800, 1023, 1024, 1025, 7999, 8000, 8001, 15999, 16000, 16001]
    lengths += [16079, 16080, 16081, 39999, 40000]
    lengths += torch.randint(1, 40001, (12,), generator=g).tolist()
    for name, (offset, min_samples) in rules.items():
        expert = UpstreamExpert(ckpts[name])
        rate = expert.get_downsample_rates("hidden_states")
        assert rate == 160 and expert.min_samples == min_samples
        for n in lengths:
            with torch.no_grad():
                hs = expert([noise(n, n)])["hidden_states"]
            frames = hs[0].shape[1]
            assert {h.shape[1] for h in hs} == {frames}
            assert frames == (max(n, min_samples) + offset) // rate, (name, n)
            assert abs(frames - round(n / rate)) <= 1 < TOLERABLE_SEQLEN_DIFF, (name, n)


@pytest.mark.parametrize("name", ["cpc", "csa"])
def test_a_batch_gives_each_utterance_its_frames_alone_and_zero_padding(ckpts, name):
    expert = UpstreamExpert(ckpts[name])
    lengths = [16000, 5, 3333, 12345, 160]
    # the longest utterance is loud so that any leak of it into the others would show
    wavs = [noise(n, i, scale=0.9 if i == 0 else 0.05) for i, n in enumerate(lengths)]
    with torch.no_grad():
        batch = expert(wavs)["hidden_states"]
        alone = [expert([w])["hidden_states"] for w in wavs]
    for i, single in enumerate(alone):
        frames = single[0].shape[1]
        for layer, h in enumerate(batch):
            torch.testing.assert_close(h[i, :frames], single[layer][0], atol=1e-5, rtol=1e-5)
            assert not h[i, frames:].any()


def test_gradients_reach_the_weights_and_the_waveforms(cpc):
    wavs = [noise(4000).requires_grad_(), noise(1500, 1).requires_grad_()]
    cpc.zero_grad()
    sum(h.pow(2).sum() for h in cpc(wavs)["hidden_states"]).backward()
    grads = [p.grad for p in cpc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in wavs)
    cpc.zero_grad()


def test_downsample_rate_is_the_checkpoints_for_every_key(cpc):
    assert cpc.get_downsample_rates("hidden_states") == 160
    assert cpc.get_downsample_rates("last_hidden_state") == 160


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_where_the_module_was_moved_to(ckpts):
    expert = UpstreamExpert(ckpts["cpc"])
    wavs = [noise(16000), noise(333, 1)]
    with torch.no_grad():
        want = expert(wavs)["hidden_states"]
        got = expert.to("cuda")([w.cuda() for w in wavs])["hidden_states"]
    for g, w in zip(got, want):
        assert g.device.type == "cuda"
        torch.testing.assert_close(g.cpu(), w, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------- model_config


def test_model_config_chooses_layers_of_one_size(ckpts, tmp_path):
    config = tmp_path / "conv.json"
    config.write_text(json.dumps({"layers": [0]}))
    hs = UpstreamExpert(ckpts["cpc"], str(config))([noise(4000)])["hidden_states"]
    assert [h.shape[-1] for h in hs] == [32]
    hs = scpc_local(ckpts["cpc"], layers=-1)([noise(4000)])["hidden_states"]
    assert [h.shape[-1] for h in hs] == [16]
    with pytest.raises(ScpcError, match="one size"):
        UpstreamExpert(ckpts["cpc"], layers=[0, 1])
    with pytest.raises(ScpcError, match="not a layer"):
        UpstreamExpert(ckpts["cpc"], layers=[3])


def test_model_config_errors_are_one_line_and_name_the_problem(ckpts, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layer: [0]\n")
    with pytest.raises(ScpcError, match="unknown key 'layer'"):
        UpstreamExpert(ckpts["cpc"], str(bad))
    with pytest.raises(ScpcError, match="no such model_config"):
        UpstreamExpert(ckpts["cpc"], str(tmp_path / "absent.yaml"))
    with pytest.raises(ScpcError, match="unknown option 'pca_file'"):
        UpstreamExpert(ckpts["cpc"], pca_file="x.pt")
    with pytest.raises(ScpcError, match="not both"):
        UpstreamExpert(ckpts["cpc"], layers=[1], pca="x.pt")


def test_model_config_pca_projects_the_last_layer_and_keeps_padding_zero(ckpts, cpc, tmp_path):
    wavs = [noise(16000), noise(2000, 1), noise(9000, 2)]
    with torch.no_grad():
        plain = cpc(wavs)["last_hidden_state"]
    frames = [(len(w) + 1) // 160 for w in wavs]
    mean, basis, variance = fit([plain[i, :n] for i, n in enumerate(frames)], 4)
    pca = Pca(mean, basis, variance, -1, 16, checkpoint_id(ckpts["cpc"]))
    pca.save(tmp_path / "pca_4.pt")
    (tmp_path / "model_config.yaml").write_text("pca: pca_4.pt\n")  # relative to the config
    expert = UpstreamExpert(ckpts["cpc"], str(tmp_path / "model_config.yaml"))
    with torch.no_grad():
        hs = expert(wavs)["hidden_states"]
    assert len(hs) == 1 and hs[0].shape == (3, 100, 4)
    for i, n in enumerate(frames):
        torch.testing.assert_close(hs[0][i, :n], pca.apply(plain[i, :n]), atol=1e-5, rtol=1e-5)
        assert not hs[0][i, n:].any()
    Pca(mean, basis, variance, -1, 16, "0" * 64).save(tmp_path / "other.pt")
    with pytest.raises(ScpcError, match="different checkpoint"):
        UpstreamExpert(ckpts["cpc"], pca=str(tmp_path / "other.pt"))


# ---------------------------------------------------------------------------- entries


def test_scpc_url_downloads_once_into_the_cache(ckpts, tmp_path, monkeypatch):
    monkeypatch.setenv("SCPC_HUB_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "remote" / "best.ckpt"
    source.parent.mkdir()
    source.write_bytes(open(ckpts["cpc"], "rb").read())
    url = source.as_uri()
    expert = scpc_url(url)
    assert expert([noise(1000)])["hidden_states"][0].shape == (1, 6, 16)
    cached = download(url)
    assert cached.parent == tmp_path / "cache" and cached.name.endswith("-best.ckpt")
    assert cached.read_bytes() == source.read_bytes()
    assert os.listdir(cached.parent) == [cached.name]  # no temporary file left behind
    source.write_bytes(b"a newer checkpoint")
    assert download(url).read_bytes() != b"a newer checkpoint"  # cached: not fetched again
    assert download(url, refresh=True).read_bytes() == b"a newer checkpoint"
    with pytest.raises(ScpcError, match="download failed"):
        download((tmp_path / "absent.ckpt").as_uri())
    assert len(os.listdir(cached.parent)) == 1


def test_scpc_custom_takes_a_path_or_a_url(ckpts, tmp_path, monkeypatch):
    monkeypatch.setenv("SCPC_HUB_CACHE", str(tmp_path / "cache"))
    assert scpc_custom(ckpts["fbank"]).min_samples == 201
    assert scpc_custom(f"file://{ckpts['fbank']}").min_samples == 201
    assert len(os.listdir(tmp_path / "cache")) == 1


def test_register_adds_the_entries_as_s3prls_runner_calls_them(ckpts):
    fake_hub = types.ModuleType("s3prl.hub")
    assert register(fake_hub) is fake_hub
    assert fake_hub.scpc_local is scpc_local and fake_hub.scpc_url is scpc_url
    upstream = fake_hub.scpc_local(ckpt=ckpts["fbank"], model_config=None, refresh=False)
    assert upstream.get_downsample_rates("hidden_states") == 160


def test_launcher_registers_then_runs_s3prls_run_downstream(monkeypatch):
    calls = []
    fake_hub = types.ModuleType("s3prl.hub")
    fake_runner = types.ModuleType("s3prl.run_downstream")
    fake_runner.main = lambda: calls.append((list(sys.argv), fake_hub.scpc_local))
    monkeypatch.setitem(sys.modules, "s3prl", types.ModuleType("s3prl"))
    monkeypatch.setitem(sys.modules, "s3prl.hub", fake_hub)
    monkeypatch.setitem(sys.modules, "s3prl.run_downstream", fake_runner)
    monkeypatch.setattr(sys, "argv", ["scpc.hub"])
    assert launcher.main(["run_downstream", "-m", "train", "-u", "scpc_local"]) == 0
    assert calls == [(["run_downstream.py", "-m", "train", "-u", "scpc_local"], scpc_local)]


def test_launcher_without_s3prl_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3prl", None)  # None in sys.modules: ImportError
    monkeypatch.setitem(sys.modules, "s3prl.hub", None)
    with pytest.raises(ScpcError, match="cannot import s3prl.hub"):
        launcher.main(["run_downstream", "-m", "train"])
    with pytest.raises(ScpcError, match="usage"):
        launcher.main(["train"])
    assert hub.ENTRIES["scpc_local"] is scpc_local


# ---------------------------------------------------------------------------- through s3prl

# s3prl.hub imports every upstream it ships; two of them import torchaudio and transformers,
# which our path never uses (and this machine's torchaudio cannot load): stub them if absent.
S3PRL_SCRIPT = """
import importlib, importlib.abc, importlib.machinery, sys, types


class Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        module = Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


absent = []
for name in ("torchaudio", "transformers"):
    try:
        importlib.import_module(name)
    except (ImportError, OSError):
        absent.append(name)
        for key in [k for k in sys.modules if k.split(".")[0] == name]:
            del sys.modules[key]
sys.meta_path.insert(0, StubFinder(absent))

import torch
from scpc.hub import UpstreamExpert, register

hub = register()
assert "scpc_local" in hub.options() and "scpc_url" in hub.options()
from s3prl.nn import Featurizer, S3PRLUpstream
from s3prl.upstream.interfaces import Featurizer as RunnerFeaturizer

ckpt = sys.argv[1]
lens = [20000, 12345, 100]
wavs = torch.randn(3, 20000) * 0.1
upstream = S3PRLUpstream("scpc_local", path_or_url=ckpt).eval()
assert upstream.num_layers == 2 and upstream.hidden_sizes == [16, 16]
assert upstream.downsample_rates == [160, 160]
with torch.no_grad():
    all_hs, all_lens = upstream(wavs, torch.tensor(lens))
want = [-(-n // 160) for n in lens]  # s3prl's own lengths: ceil(len / rate)
for h, h_len in zip(all_hs, all_lens):
    assert h.shape == (3, 125, 16), h.shape
    assert h_len.tolist() == want, h_len
featurizer = Featurizer(upstream)
with torch.no_grad():
    h, h_len = featurizer(all_hs, all_lens)
assert h.shape == (3, 125, 16) and h_len.tolist() == want
# the same frames as our expert's, where both have them
expert = UpstreamExpert(ckpt)
with torch.no_grad():
    ours = expert([w[:n] for w, n in zip(wavs, lens)])["hidden_states"]
for theirs, mine in zip(all_hs, ours):
    torch.testing.assert_close(theirs, mine)
one = S3PRLUpstream("scpc_local", path_or_url=ckpt, extra_conf={"layers": [0]})
assert one.num_layers == 1 and one.hidden_sizes == [32]

# run_downstream.py's path: hub entry called with ckpt/model_config/refresh, its Featurizer
expert = getattr(hub, "scpc_local")(ckpt=ckpt, model_config=None, refresh=False)
runner_featurizer = RunnerFeaturizer(expert, upstream_device="cpu")
assert runner_featurizer.downsample_rate == 160 and runner_featurizer.output_dim == 16
wav_list = [w[:n] for w, n in zip(wavs, lens)]
with torch.no_grad():
    features = runner_featurizer(wav_list, expert(wav_list))  # asserts s3prl's tolerance
assert [len(f) for f in features] == [round(n / 160) for n in lens]
print("s3prl ok", absent)
"""


@pytest.mark.slow
def test_s3prl_takes_our_expert_through_its_hub_featurizers_and_runner_checks(ckpts, tmp_path):
    pytest.importorskip("s3prl")
    script = tmp_path / "through_s3prl.py"
    script.write_text(textwrap.dedent(S3PRL_SCRIPT))
    path = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(script), ckpts["cpc"]], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "s3prl ok" in proc.stdout
