"""One writer per experiment directory: a lock file naming its holder.

A writer (scpc-train, scpc-superb train, scpc-baseline train/decode, scpc-a2r) takes
``<dir>/.lock`` (or ``<dir>/.lock.<name>`` for a share of the work, such as one scpc-a2r job)
before it writes anything, and removes it when it ends. The file holds the holder's host,
pid, the pid's start time (so a reused pid is not mistaken for it), the start of the run,
the command and a Slurm or Grid Engine job id. A second writer stops at once with one line
naming the holder. A lock whose process is gone (same host) or whose cluster job has ended
is taken over with a notice.

The lock is created by writing a uniquely named file and hard-linking it to the lock's name:
``link`` is atomic on NFS, where ``O_EXCL`` and ``flock`` have not always been, so two hosts
sharing an experiment directory cannot both get it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from scpc.errors import ScpcError
from scpc.io import remove_temps
from scpc.processes import process_alive, process_start

LOCK = ".lock"


def _job() -> str | None:
    for var, kind in (("SLURM_JOB_ID", "slurm"), ("JOB_ID", "sge")):
        if os.environ.get(var):
            return f"{kind}:{os.environ[var]}"
    return None


def _job_ended(job: str | None) -> bool:
    """Whether a cluster job is known to have ended (its scheduler no longer lists it)."""
    if not job:
        return False
    kind, _, num = job.partition(":")
    cmd = {"slurm": ["squeue", "-h", "-j", num], "sge": ["qstat", "-j", num]}.get(kind)
    if cmd is None or shutil.which(cmd[0]) is None:
        return False
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if kind == "slurm":
        return proc.returncode == 0 and not proc.stdout.strip() or "Invalid job id" in proc.stderr
    return proc.returncode != 0  # qstat -j of an unknown job fails


class ExperimentLock:
    """``with ExperimentLock(dir, "scpc-train"):`` holds ``dir/.lock`` for the block."""

    def __init__(self, directory: str | os.PathLike, command: str, name: str = LOCK) -> None:
        self.dir = Path(directory)
        self.path = self.dir / name
        self.command = command
        self.info: dict[str, Any] = {}
        self.held = False

    def describe(self, info: dict[str, Any]) -> str:
        job = f", job {info['job']}" if info.get("job") else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
        return f"{info.get('command', '?')} (pid {info.get('pid')} on {info.get('host')}{job}, since {since})"

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # half-written by a holder killed while writing it: stale

    def _stale(self, info: dict[str, Any]) -> bool:
        if not info:
            return True
        if info.get("host") == socket.gethostname():
            return not process_alive(int(info.get("pid", 0)), info.get("pid_start"))
        return _job_ended(info.get("job"))

    def acquire(self) -> ExperimentLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": process_start(os.getpid()),
            "started": time.time(),
            "command": self.command,
            "job": _job(),
        }
        mine = self.path.with_name(f"{self.path.name}.{socket.gethostname()}.{os.getpid()}")
        try:
            mine.write_text(json.dumps(self.info) + "\n")
        except OSError as e:
            raise ScpcError(f"{self.dir}: cannot write there ({e.strerror})") from None
        try:
            for _ in range(3):
                try:
                    os.link(mine, self.path)
                    self.held = True
                    if self.path.name == LOCK:  # the whole directory's writer
                        self.remove_stale_temps()
                    return self
                except FileExistsError:
                    pass
                holder = self._read()
                if holder is None:
                    continue  # released meanwhile
                if not self._stale(holder):
                    raise ScpcError(
                        f"{self.dir}: in use by {self.describe(holder)}; wait for it to end or "
                        f"stop it (its lock: {self.path})"
                    )
                print(
                    f"{self.path}: taking over the lock of {self.describe(holder)}, which is gone",
                    file=sys.stderr,
                )
                self.path.unlink(missing_ok=True)
            raise ScpcError(f"{self.path}: could not take the lock (another writer raced for it)")
        finally:
            mine.unlink(missing_ok=True)

    def remove_stale_temps(self) -> int:
        """Temporary files that killed writers left under the directory (this lock's holder is
        its only writer now); the number removed, with a notice."""
        removed = remove_temps(self.dir)
        if removed:
            print(
                f"{self.dir}: removed {removed} temporary files of an interrupted writer",
                file=sys.stderr,
            )
        return removed

    def release(self) -> None:
        if self.held:
            holder = self._read()
            if (
                holder is not None
                and holder.get("pid") == self.info["pid"]
                and (holder.get("host") == self.info["host"])
            ):
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> ExperimentLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
