"""Helpers shared by the benchmark scripts: the mini data dir, tables, memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("/tmp/bench_data/mini")


def ensure_mini_data(data: Path = DEFAULT_DATA) -> Path:
    """The mini corpus's Kaldi data dirs under ``data`` (made by local/mini_data_prep.sh)."""
    if not (data / ".complete").is_file():
        env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
        subprocess.run(
            [str(ROOT / "local" / "mini_data_prep.sh"), str(data)],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return data


def read_scp(path: Path) -> list[tuple[str, str]]:
    """``<uttid> <entry>`` lines of a Kaldi wav.scp, in file order."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            utt, entry = line.strip().split(maxsplit=1)
            out.append((utt, entry))
    return out


def peak_rss_gb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1e6  # kB on Linux


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 3 + max(len(v) for _, v in rows)))
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    sys.stdout.flush()
