"""scpc-import spiral: SPIRAL's .nemo archives and Lightning checkpoints give the outputs of
SPIRAL's own code (golden fixtures: tests/fixtures/spiral/README.md)."""

import io
import tarfile
from pathlib import Path

import pytest
import torch

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "spiral"
TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ["spiral.nemo", "spiral.ckpt"])
def test_features_every_layer_and_output_equal_spirals_code(tmp_path, name):
    model = load_inference_checkpoint(
        import_checkpoint("spiral", FIXTURES / name, tmp_path / "s.ckpt")
    )
    wavs = torch.load(FIXTURES / "inputs.pt")["wavs"]
    expected = torch.load(FIXTURES / "expected.pt")
    lens = torch.tensor([len(w) for w in wavs])
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    with torch.no_grad():
        feats, feat_lens = model.frontend(batch, lens)
        out = model(batch, lens)
    diffs = {"features": 0.0, "output": 0.0}
    for n, e in enumerate(expected):
        frames = e["frames"]
        assert int(feat_lens[n]) == len(e["feats"]) and int(out.lens[n]) == frames
        diffs["features"] = max(
            diffs["features"], float((feats[n, : len(e["feats"])] - e["feats"]).abs().max())
        )
        for i, (ours, theirs) in enumerate(zip(out.hidden_states[:-1], e["layers"][:-1])):
            key = f"layer{i}"
            diffs[key] = max(diffs.get(key, 0.0), float((ours[n, :frames] - theirs).abs().max()))
        diffs["output"] = max(
            diffs["output"], float((out.output[n, :frames] - e["output"]).abs().max())
        )
        assert not out.output[n, frames:].any()
    print(f"spiral ({name}) max abs difference: { {k: f'{v:.1e}' for k, v in diffs.items()} }")
    assert max(diffs.values()) <= TOLERANCE


def test_provenance_and_frontend(tmp_path):
    ckpt = import_checkpoint("spiral", FIXTURES / "spiral.nemo", tmp_path / "exp" / "spiral")
    payload = read_checkpoint(ckpt)
    assert payload["frontend"]["name"] == "nemo_mel" and payload["frontend"]["nfilt"] == 40
    assert payload["frontend"]["normalize_time_domain"] is True
    assert payload["downsampling_factor"] == 160 * 8
    assert payload["encoder"]["args"]["blocks"][0]["padding"] == "tf"


def nemo_archive(path, config=None, state=None, drop=None):
    with tarfile.open(FIXTURES / "spiral.nemo") as tar:
        files = {
            m.name.split("/")[-1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()
        }
    if state is not None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        files["model_weights.ckpt"] = buffer.getvalue()
    if config is not None:
        files["model_config.yaml"] = config.encode()
    files.pop(drop, None)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def original_state():
    with tarfile.open(FIXTURES / "spiral.nemo") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("model_weights.ckpt"))
        return torch.load(io.BytesIO(tar.extractfile(member).read()))


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: nemo_archive(p, drop="model_config.yaml"), "no model_config.yaml"),
        (
            lambda p: nemo_archive(p, config="encoder_type: st\n"),
            "no encoder config with a feature_encoder",
        ),
        (
            lambda p: nemo_archive(
                p, state={k: v for k, v in original_state().items() if "fc2.bias" not in k}
            ),
            r"weights do not fit its config \(no st2vec_encoder.feature_encoder.block_modules.3.layers.0.fc2.bias\)",
        ),
        (
            lambda p: nemo_archive(
                p,
                state={
                    k: (v * 2 if k.endswith("featurizer.fb") else v)
                    for k, v in original_state().items()
                },
            ),
            "mel filter bank differs",
        ),
        (
            lambda p: p.write_bytes((FIXTURES / "spiral.nemo").read_bytes()[:3000]),
            "damaged .nemo archive",
        ),
    ],
)
def test_damaged_input_is_one_line_and_writes_nothing(tmp_path, make, message):
    src = tmp_path / "bad.nemo"
    make(src)
    with pytest.raises(ScpcError, match=message):
        import_checkpoint("spiral", src, tmp_path / "exp" / "bad")
    assert not (tmp_path / "exp").exists()
