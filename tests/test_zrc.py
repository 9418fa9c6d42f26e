"""The ZeroSpeech abxLS path: templates, offline detection, dataset lists, score conversion,
and local/zrc_run.sh --set abxLS end to end against an offline stand-in for zrc."""

import csv
import datetime
import json
import re
import socket

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_script

from scpc.errors import ScpcError
from scpc.eval import abx_table, zrc

PARAMS = ROOT / "conf" / "zrc" / "abxLS.params.yaml"
META = ROOT / "conf" / "zrc" / "abxLS.meta.yaml"
# zerospeech-benchmarks 0.9.4: the fields ABX2Parameters.export writes and MetaFile reads
ZRC_PARAMS = {
    "feature_size",
    "cuda",
    "speaker_mode",
    "context",
    "distance_mode",
    "max_size_group",
    "max_x_across",
    "seed",
    "score_file_type",
    "result_filename",
}
ZRC_META = {"username", "benchmark_name", "model_info", "publication", "open_source", "code_url"}
ZRC_MODEL_INFO = {"system_description", "train_set", "gpu_budget"}
ZRC_PUBLICATION = {
    "author_label",
    "authors",
    "paper_title",
    "paper_url",
    "publication_year",
    "institution",
    "team",
}


def test_params_template_gives_zrc_parameters():
    p = zrc.render(PARAMS, zrc.params_values(160, "euclidean", cuda=False))
    assert set(p) == ZRC_PARAMS
    assert p["feature_size"] == 0.01 and p["cuda"] is False
    assert p["distance_mode"] == "euclidian"  # zrc's spelling
    assert (p["max_size_group"], p["max_x_across"], p["seed"]) == (10, 5, 3459)
    assert (p["speaker_mode"], p["context"], p["score_file_type"]) == ("all", "all", ".npy")
    assert zrc.render(PARAMS, zrc.params_values(320, "cosine", True))["feature_size"] == 0.02
    with pytest.raises(ScpcError, match="unknown ABX distance 'manhattan'"):
        zrc.params_values(160, "manhattan", True)


def test_meta_template_is_filled_from_the_checkpoint():
    provenance = {
        "name": "cpc.small",
        "model_yaml": "name: cpc.small\nsystem_description: \"CPC: 2 layers, 'small'\"\n",
        "train_data": "data/librispeech/raw/train_100_cpc_train",
    }
    info = {"encoder": "conv+lstm", "num_params": 2_370_000, "output_size": 256}
    info["frame_rate_hz"] = "100"
    m = zrc.render(META, zrc.meta_values(provenance, info, pca=32))
    assert set(m) == ZRC_META and m["benchmark_name"] == "abxLS"
    assert set(m["model_info"]) == ZRC_MODEL_INFO and set(m["publication"]) == ZRC_PUBLICATION
    desc = m["model_info"]["system_description"]
    assert desc.startswith("scpc cpc.small: CPC: 2 layers, 'small'; 2.37M parameters")
    assert desc.endswith("256-dim frames at 100 Hz, PCA to 32 dimensions")
    assert m["model_info"]["train_set"] == "data/librispeech/raw/train_100_cpc_train"
    assert m["publication"]["publication_year"] == datetime.date.today().year
    # what the user must still provide keeps zrc's template marks, which zrc refuses to submit
    assert re.match(r"<.*>", m["publication"]["authors"]) and re.match(r"<.*>", m["username"])
    untrained = zrc.meta_values({}, info, None)
    assert untrained["train_set"] == "none (not trained)"
    assert "conv+lstm" in untrained["system_description"]


def test_render_names_the_template_and_missing_value(tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text("a: ${a}\nb: ${nope}\n")
    with pytest.raises(ScpcError, match=r"t.yaml: no value for \$\{nope\}"):
        zrc.render(t, {"a": 1})
    with pytest.raises(ScpcError, match="cannot read the template"):
        zrc.render(tmp_path / "absent.yaml", {})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_offline_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/repo.json"
    with pytest.raises(ScpcError, match=r"cannot reach 127\.0\.0\.1:\d+ .*--set mini"):
        zrc.check_online(url, timeout=5)
    proc = run_script(".venv/bin/scpc-zrc", "check", "--url", url, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("scpc-zrc: cannot reach")
    index = tmp_path / "repo.json"
    index.write_text("{}")
    zrc.check_online(index.as_uri())


def write_index(root, subsets):
    root.mkdir(parents=True)
    data = {
        "subsets": {
            s.replace("-", "_"): {
                "items": {"wav_list": {"files_list": [f"{s}/b.wav", f"{s}/a.wav"]}}
            }
            for s in subsets
        }
    }
    (root / "index.json").write_text(json.dumps(data))


def test_subset_audio_from_the_dataset_index(tmp_path):
    ds = zrc.dataset_dir(tmp_path / "zr")
    write_index(ds, ["dev-clean"])
    assert zrc.subset_audio(ds, "dev-clean") == [
        ("a", ds / "dev-clean" / "a.wav"),
        ("b", ds / "dev-clean" / "b.wav"),
    ]
    with pytest.raises(ScpcError, match="index.json: no wav_list for subset test_other"):
        zrc.subset_audio(ds, "test-other")
    with pytest.raises(ScpcError, match="index.json: missing; pull the dataset"):
        zrc.subset_audio(tmp_path, "dev-clean")


def test_zrc_scores_become_scpc_abx_csvs(tmp_path):
    sub = tmp_path / "sub"
    (sub / "scores").mkdir(parents=True)
    (sub / "params.yaml").write_text("result_filename: score_all_phonetic\n")
    rows = [
        ("dev-clean", "within", "within", "phoneme", "0.0412"),
        ("dev-clean", "across", "within", "phoneme", "0.0533"),
        ("dev-clean", "within", "any", "phoneme", "0.0634"),
        ("dev-clean", "across", "any", "phoneme", "0.0735"),
        ("dev-clean", "within", "within", "triphone", "0.0301"),
        ("test-other", "within", "within", "phoneme", "-"),
    ]
    with open(sub / "scores" / "score_all_phonetic.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subset", "speaker_mode", "context_mode", "granularity", "score", "pooling"])
        w.writerows(r + ("none",) for r in rows)
    out = tmp_path / "abx"
    written = zrc.convert_scores(sub, "cpc", out, "cosine")
    assert written == [out / "cpc.dev-clean.csv"]  # a subset without scores writes nothing
    scores = abx_table.read_scores(written[0])
    assert scores[("within", "within")] == ("cosine", pytest.approx(4.12))
    assert scores[("across", "any")][1] == pytest.approx(7.35)
    assert scores[("within", "triphone")][1] == pytest.approx(3.01)
    (sub / "scores" / "score_all_phonetic.csv").write_text("subset,score\n")
    with pytest.raises(ScpcError, match="no column context_mode, granularity, speaker_mode"):
        zrc.convert_scores(sub, "cpc", out, "cosine")


@pytest.mark.slow
def test_zrc_run_abxls_with_an_offline_zrc(tmp_path, mini_data):
    """The recipe's commands, files and table, with a format-faithful zrc (tests/fake_zrc.py)."""
    em = tmp_path / "exp" / "fb" / "version_0"
    run_script(
        ".venv/bin/scpc-init", "frontend", ROOT / "conf/feats/fbank-41.json", em / "best.ckpt"
    )
    (tmp_path / "repo.json").write_text("{}")
    log = tmp_path / "zrc.log"
    env = {
        "APP_DIR": str(tmp_path / "zr"),
        "SCPC_ZRC_REPO_URL": (tmp_path / "repo.json").as_uri(),
        "FAKE_ZRC_LOG": str(log),
        "FAKE_ZRC_MINI": str(mini_data),
        "PYTHONPATH": str(ROOT / "tests"),
    }
    fake = f"{ROOT / '.venv/bin/python'} {ROOT / 'tests/fake_zrc.py'}"
    args = [ROOT / "local/zrc_run.sh", "--model", "fb", "--set", "abxLS", "--zrc", fake]
    args += ["--expdir", tmp_path / "exp", "--baselines", "mfcc", "--parts", "dev-clean dev-other"]
    proc = run_script(*args, env=env)

    abx = em / "abx" / "abxLS"
    sub_fb, sub_mfcc = abx / "submission" / "fb", abx / "submission" / "mfcc"
    assert log.read_text().splitlines() == [
        "datasets:pull abxLS-dataset",
        f"submission:init abxLS {sub_fb}",
        f"benchmarks:run abxLS {sub_fb} -s dev -t clean other",
        f"submission:init abxLS {sub_mfcc}",
        f"benchmarks:run abxLS {sub_mfcc} -s dev -t clean other",
    ]
    params = yaml.safe_load((sub_fb / "params.yaml").read_text())
    assert params["feature_size"] == 0.01 and params["distance_mode"] == "cosine"
    meta = yaml.safe_load((sub_fb / "meta.yaml").read_text())
    assert meta["benchmark_name"] == "abxLS"
    assert meta["model_info"]["system_description"].startswith(
        "scpc fbank-41: id; 0.00M parameters"
    )
    rep = next((sub_fb / "dev-clean").glob("*.npy"))
    assert np.load(rep).dtype == np.float64 and np.load(rep).shape[1] == 41
    table = [
        r
        for r in map(str.split, proc.stdout.splitlines())
        if r[1:2] in (["dev-clean"], ["dev-other"])
    ]
    assert [r[:2] for r in table] == [
        ["fb", "dev-clean"],
        ["fb", "dev-other"],
        ["mfcc", "dev-clean"],
        ["mfcc", "dev-other"],
    ]
    assert all(0 <= float(x) <= 50 for r in table for x in r[2:])
    # finished: a re-run only prints the table
    again = run_script(*args, env=env)
    assert len(log.read_text().splitlines()) == 5
    assert again.stdout.splitlines()[-6:] == proc.stdout.splitlines()[-6:]


@pytest.mark.slow
def test_zrc_run_abxls_offline_stops_in_one_line(tmp_path):
    em = tmp_path / "exp" / "fb" / "version_0"
    run_script(
        ".venv/bin/scpc-init", "frontend", ROOT / "conf/feats/fbank-41.json", em / "best.ckpt"
    )
    env = {"SCPC_ZRC_REPO_URL": f"http://127.0.0.1:{closed_port()}/repo.json"}
    args = [
        ROOT / "local/zrc_run.sh",
        "--model",
        "fb",
        "--set",
        "abxLS",
        "--expdir",
        tmp_path / "exp",
    ]
    proc = run_script(*args, env=env, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        next(ln for ln in proc.stderr.splitlines() if ln.startswith("scpc-zrc: cannot reach"))
    ]
    assert not (tmp_path / "exp" / "fb" / "version_0" / "abx").exists()


@pytest.mark.slow
def test_zrc_without_zerospeech_benchmarks_is_one_line():
    import importlib.util

    if importlib.util.find_spec("zerospeech") is not None:
        pytest.skip("zerospeech-benchmarks is installed")
    proc = run_script(".venv/bin/scpc-zrc", "zrc", "--help", check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "scpc-zrc: zerospeech-benchmarks is not installed (No module named 'zerospeech'); "
        "utils/setup_zrc.sh installs it"
    ]
