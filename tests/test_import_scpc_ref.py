"""scpc-import scpc-ref: the reference scpc's best.ckpt files give the reference's outputs.

The reference needs Lightning 1.9 and pydrobert-pytorch's master, which do not install in CI,
so its outputs are golden fixtures (tests/fixtures/scpc_ref/README.md says how they were made).
"""

import shutil
from pathlib import Path

import pytest
import torch

from scpc.errors import ScpcError
from scpc.importers.run import import_checkpoint
from scpc.models.checkpoint import load_inference_checkpoint, read_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "scpc_ref"
MODELS = ["cpc.small", "cpc.csa8", "cpc.cconv4", "cpc.deft", "bestrq.csa4", "fbank.sa", "fbank"]
TOLERANCE = 1e-4


def imported(tmp_path, name):
    expected = torch.load(FIXTURES / f"{name}.expected.pt")
    args = tmp_path / "feats.args.txt"
    if expected["computer"] is None:
        args.write_text("--raw\n")
    else:
        shutil.copy(FIXTURES / expected["computer"], tmp_path)
        args.write_text(f"--computer-json\n{tmp_path / expected['computer']}\n")
    ckpt = import_checkpoint(
        "scpc-ref", FIXTURES / f"{name}.best.ckpt", tmp_path / "exp" / name, feats_args=args
    )
    return load_inference_checkpoint(ckpt), expected


def valid(x, lens):
    return torch.cat([x[n, :k] for n, k in enumerate(lens.tolist())])


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_equals_the_reference(tmp_path, name):
    model, expected = imported(tmp_path, name)
    inputs = torch.load(FIXTURES / "inputs.pt")
    with torch.no_grad():
        feats, feat_lens = model.frontend(inputs["wav"], inputs["lens"])
        assert feat_lens.tolist() == expected["feat_lens"].tolist()
        diffs = {
            "features": float(
                (valid(feats, feat_lens) - valid(expected["feats"], feat_lens)).abs().max()
            )
        }
        x, lens = feats, feat_lens
        for i, (member, want) in enumerate(zip(model.encoder.encoders, expected["outputs"])):
            x, lens, _ = member(x, lens)
            assert lens.tolist() == expected["lens"].tolist()
            diffs[f"{member.json_name}{i}"] = float(
                (valid(x, lens) - valid(want, lens)).abs().max()
            )
        end_to_end = model(inputs["wav"], inputs["lens"]).output
        diffs["output"] = float(
            (valid(end_to_end, lens) - valid(expected["outputs"][-1], lens)).abs().max()
        )
    print(f"scpc-ref {name} max abs difference: {diffs}")
    assert max(diffs.values()) <= TOLERANCE


def test_raw_model_reads_int16_scale_and_needs_no_feats_args(tmp_path):
    ckpt = import_checkpoint("scpc-ref", FIXTURES / "cpc.small.best.ckpt", tmp_path / "a.ckpt")
    payload = read_checkpoint(ckpt)
    assert payload["frontend"] == {"name": "raw", "input_scale": 32768.0}
    assert payload["downsampling_factor"] == 160
    assert payload["provenance"]["imported"]["original"]["json"]["name"] == "seq"


def test_recipe_relative_computer_path_is_found_from_the_args_file(tmp_path):
    conf = tmp_path / "ref" / "conf"
    conf.mkdir(parents=True)
    shutil.copy(FIXTURES / "fbank-80-feats.json", conf)
    (conf / "feats.fbank-80.args.txt").write_text("--computer-json\nconf/fbank-80-feats.json\n")
    ckpt = import_checkpoint(
        "scpc-ref",
        FIXTURES / "bestrq.csa4.best.ckpt",
        tmp_path / "b.ckpt",
        feats_args=conf / "feats.fbank-80.args.txt",
    )
    assert read_checkpoint(ckpt)["frontend"]["bank"]["num_filts"] == 80


@pytest.mark.parametrize(
    "payload,message",
    [
        ({"state_dict": {}, "hyper_parameters": {}}, "Lightning training checkpoint"),
        ({"json": {"name": "transformer-xl"}}, "unknown reference encoder 'transformer-xl'"),
        ({"json": {"name": "conv", "args": [1, 8, "instance", 0.0]}}, "'instance' norm"),
        ({"json": {"name": "ff", "args": [1, 8]}}, "missing net.1.bias"),
    ],
)
def test_foreign_or_unsupported_input_is_one_line_and_writes_nothing(tmp_path, payload, message):
    src = tmp_path / "best.ckpt"
    torch.save(payload, src)
    with pytest.raises(ScpcError, match=message) as e:
        import_checkpoint("scpc-ref", src, tmp_path / "exp" / "x")
    assert str(src) in str(e.value)
    assert not (tmp_path / "exp").exists()


def test_fbank_model_without_its_computer_is_refused(tmp_path):
    with pytest.raises(ScpcError, match="takes 80 features: name its feature computer"):
        import_checkpoint("scpc-ref", FIXTURES / "bestrq.csa4.best.ckpt", tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
