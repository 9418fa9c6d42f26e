"""The code keeps one style: ruff's lint rules and formatter (pyproject.toml) on every Python
file, shellcheck (.shellcheckrc) on every shell script, and imports that flow one way."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from collections import defaultdict

import pytest
from conftest import ROOT

PATHS = ["src", "tests", "bench", "local"]
# The package's layers, top to bottom (DESIGN.md): a module may import its own layer or a
# lower one, never a higher one. Top-level modules and packages of scpc by layer:
LAYERS = (
    ("cli", "hub.__main__"),
    ("baseline", "downstream", "train", "hub", "extract", "pca", "modelinfo", "importers"),
    ("models", "objectives", "data", "eval", "nn", "tables"),
    (
        "frontend",
        "audio",
        "io",
        "config",
        "errors",
        "masks",
        "progress",
        "malloc",
        "kaldi_tables",
        "locks",
        "processes",
    ),
)


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


def shell_scripts() -> list[str]:
    """Every tracked shell script: *.sh and the extensionless ones with a bash shebang."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    scripts = []
    for name in files:
        path = ROOT / name
        if name.endswith(".sh"):
            scripts.append(name)
        elif path.is_file() and "." not in path.name:
            with open(path, "rb") as f:
                first = f.readline()
            if first.startswith(b"#!") and b"bash" in first:
                scripts.append(name)
    return scripts


@pytest.mark.slow
def test_shell_scripts_pass_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        if os.environ.get("SCPC_REQUIRE_SHELLCHECK") == "1":
            pytest.fail("shellcheck is not installed (.ci/run installs Debian's package)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = shell_scripts()
    assert "run.sh" in scripts and ".ci/run" in scripts and "local/upstream.sh" in scripts
    proc = subprocess.run([exe, "-f", "gcc", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _layer(module: str) -> int:
    rest = module.split(".", 1)[1] if "." in module else ""
    for depth, names in enumerate(LAYERS):
        if any(rest == n or rest.startswith(n + ".") for n in names):
            return depth
    raise AssertionError(f"{module}: not in any layer of tests/test_style.py's LAYERS")


def import_graph() -> dict[str, set[str]]:
    """scpc module -> the scpc modules it imports (at the top or inside functions)."""
    src = ROOT / "src"
    modules = {}
    for path in (src / "scpc").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in modules:
                        graph[name].add(target)
                    elif base in modules:
                        graph[name].add(base)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
    return {m: graph.get(m, set()) for m in modules}


def test_imports_flow_one_way_with_no_cycle():
    graph = import_graph()
    upward = [
        f"{m} -> {t}" for m, targets in graph.items() for t in targets if _layer(t) < _layer(m)
    ]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)
    # no cycle between modules (depth-first search for a back edge)
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t) :] + [t] if t in path else [m, t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
