"""Processes on this host: whether one is still the one we knew (for stale locks), and a
command that ends with the launcher that started it.

utils/run_local.sh exports ``SCPC_LAUNCHER_PID``. Every scpc command (scpc.cli.common.run)
then watches that process; when it is gone (killed with SIGKILL, which it cannot pass on),
the command sends itself SIGTERM. A trainer then saves its state and stops, as it does for
any TERM, instead of training on unseen while a re-run starts a second one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

LAUNCHER_PID = "SCPC_LAUNCHER_PID"


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (the state) on, or None where /proc does not say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or
    None where /proc does not say: with the pid it names one process, whatever reuses the pid."""
    stat = _stat(pid)
    return stat[19] if stat else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` runs, and is the process that started at ``start`` (when given)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc: kill(pid, 0) is all there is
    if stat[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return start is None or stat[19] == start


def watch_launcher(interval: float = 1.0) -> threading.Thread | None:
    """If a launcher exported its pid, a daemon thread that sends this process SIGTERM once the
    launcher has gone."""
    value = os.environ.get(LAUNCHER_PID, "")
    if not value.isdigit():
        return None
    pid = int(value)
    start = process_start(pid)
    if not process_alive(pid, start):
        return None  # gone before we started (or not ours to watch)

    def watch() -> None:
        while process_alive(pid, start):
            time.sleep(interval)
        prog = os.path.basename(sys.argv[0])
        print(f"{prog}: the launcher (pid {pid}) is gone; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="scpc-launcher-watch", daemon=True)
    thread.start()
    return thread
