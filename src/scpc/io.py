"""Crash-safe file writing: write to a temporary name in the same directory, then rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from scpc.errors import ScpcError


def _umask_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's is 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


TEMP_MARKER = ".scpc-tmp."  # in the name of every temporary file of atomic_path/atomic_write


def is_temp(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_path`'s temporary names."""
    return name.startswith(".") and TEMP_MARKER in name


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(path: Path, error: BaseException, tmp: str | os.PathLike) -> ScpcError | None:
    """The one-line error of a write that ran out of space (ENOSPC, EDQUOT, or torch's zip
    writer failing on a file system with no room left), else None. ``tmp`` is the partial file,
    measured before it is removed."""
    full = isinstance(error, OSError) and error.errno in DISK_FULL
    try:
        written = os.path.getsize(tmp)
        st = os.statvfs(path.parent)
        free = st.f_bavail * st.f_frsize
    except OSError:
        written, free = 0, None
    # torch.save reports a full disk as "unexpected pos N vs M" (a RuntimeError, no errno)
    if not full and isinstance(error, RuntimeError) and free is not None:
        full = free < (1 << 20) and ("unexpected pos" in str(error) or "write" in str(error))
    if not full:
        return None
    what = "over quota" if getattr(error, "errno", None) == errno.EDQUOT else "no space left"
    room = f", {free / 1e6:.1f} MB free" if free is not None else ""
    return ScpcError(
        f"{path}: {what} on its file system after {written / 1e6:.1f} MB of it{room}; make "
        f"room and run again (the previous {path.name}, if any, is intact)"
    )


def remove_temps(directory: str | os.PathLike) -> int:
    """Remove the temporary files that killed writers left under ``directory`` (call it only
    as the directory's sole writer); the number removed."""
    removed = 0
    for root, _, files in os.walk(directory):
        for name in files:
            if is_temp(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    A crash or exception leaves ``path`` as it was (absent or the old version).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARKER}", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as e:
        full = disk_full_error(path, e, tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full is not None:
            raise full from None
        raise


def atomic_path(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_write`, but yields a temporary path for writers that take a name."""
    return _atomic_path(Path(path))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # the suffix stays (np.save and others add theirs otherwise); the marker lets a later
    # writer holding the directory's lock remove what a killed one left (scpc.locks)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}{TEMP_MARKER}", suffix=path.suffix, dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as e:
        full = disk_full_error(path, e, tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full is not None:
            raise full from None
        raise


def save_torch(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary name, then rename."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(
    path: str | os.PathLike, fmt: str, what: str, device: object = "cpu", hint: str = ""
) -> dict:
    """A dict saved by :func:`save_torch` whose ``format`` is ``fmt``; a missing, unreadable
    or foreign file is a one-line error naming it (``what``: "an scpc training state";
    ``hint``: how to make a missing one)."""
    import torch

    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file{f' ({hint})' if hint else ''}") from None
    except Exception as e:
        raise ScpcError(f"{path}: unreadable, not {what} ({type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ScpcError(f"{path}: not {what}")
    return obj
