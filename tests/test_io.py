"""Crash-safe writes: the old file survives a failed write; new files get the umask's mode."""

from __future__ import annotations

import os
import stat

import pytest

from scpc.io import atomic_path, atomic_write


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_path"])
def test_written_files_are_readable_by_others_as_the_umask_allows(tmp_path, writer):
    old = os.umask(0o022)
    try:
        path = tmp_path / "best.ckpt"
        if writer == "atomic_write":
            with atomic_write(path) as f:
                f.write("x")
        else:
            with atomic_path(path) as tmp:
                tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
