import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "mini"


def run_script(*args, cwd=ROOT, check=True, env=None):
    """Run a repository script with the project's environment; return the CompletedProcess."""
    full_env = dict(os.environ, LC_ALL="C", SCPC_QUIET="1", **(env or {}))
    full_env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{full_env['PATH']}"
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=full_env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory):
    """The mini corpus prepared once per test session by local/mini_data_prep.sh."""
    data = tmp_path_factory.mktemp("data") / "mini"
    run_script(ROOT / "local" / "mini_data_prep.sh", data)
    return data


def mini_feat_dirs(mini_data, out, feat_type):
    """The front-end config of conf/feats/<feat_type>.json and feature dirs of the mini
    corpus's dev and test parts made with it under ``out`` (training and validation sets)."""
    from scpc.data.featdir import compute_feat_dir
    from scpc.frontend import load_frontend_config

    frontend = load_frontend_config(ROOT / "conf" / "feats" / f"{feat_type}.json")
    dirs = []
    for part in ("dev", "test"):
        compute_feat_dir(mini_data / part, out / part, frontend)
        dirs.append(out / part)
    return frontend, dirs


def train_tiny(out, config, dirs):
    """scpc-train of ``config`` (a dict) on ``dirs`` in ``out/exp``; returns that directory."""
    import yaml

    exp = out / "exp"
    exp.mkdir()
    (exp / "model.yaml").write_text(yaml.safe_dump(config))
    run_script(".venv/bin/scpc-train", "--quiet", exp / "model.yaml", *dirs)
    return exp
