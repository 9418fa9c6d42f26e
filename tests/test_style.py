"""The code keeps one style: ruff's lint rules and formatter, as configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess

from conftest import ROOT

PATHS = ["src", "tests", "bench"]


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(ROOT / ".venv" / "bin")) or shutil.which("ruff")
    assert exe is not None, "ruff is not installed (requirements.txt pins it)"
    return [exe]


def test_ruff_lint_passes():
    proc = subprocess.run([*_ruff(), "check", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_formatting_is_applied():
    proc = subprocess.run(
        [*_ruff(), "format", "--check", *PATHS], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
