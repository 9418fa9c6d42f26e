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
