"""Stopping training at a step boundary on SIGTERM or SIGUSR1, with its state saved.

SIGTERM is what a scheduler sends on preemption or cancellation, SIGUSR1 what Slurm sends
before the time limit when asked (conf/slurm.conf's --signal=B:USR1@300). A trainer checks
``requested`` after each optimiser step; when set, it saves ``last.ckpt`` and calls
``stop_training``, which logs the stop and raises ``StoppedBySignal``: the command-line tools
turn that into exit code 128 + the signal (143, 138). The launchers requeue a job that gets
SIGUSR1 and does not finish (utils/launcher_lib.sh).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import NoReturn

from scpc.errors import StoppedBySignal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """While active (``with``), remembers the last stop signal received instead of dying."""

    def __init__(self) -> None:
        self.requested = 0  # the signal's number, 0 for none
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = signum

    def __enter__(self) -> StopSignals:
        # handlers can only be set in the main thread; elsewhere signals keep their default
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        self._previous = {}


def stop_training(
    signum: int,
    step: int,
    where: str,
    save: Callable[[], None],
    state: Path,
    log: Callable[[str], None],
) -> NoReturn:
    """Save the training ``state`` (``save()``), log where it stopped (e.g. "epoch 2, step
    410") and raise StoppedBySignal."""
    save()
    log(
        f"{signal.Signals(signum).name} received: stopped at {where}; {state.name} saved, "
        "a new run resumes from it"
    )
    raise StoppedBySignal(signum, step, str(state))
