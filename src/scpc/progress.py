"""Progress bars and messages on stderr, one rule for every long job of the package.

On a terminal a bar refreshes twice a second; into a log file (a scheduler's job log) it
writes a line every 30 s rather than one per step. ``SCPC_QUIET=1`` silences every bar (tests,
nested jobs); messages then go out as plain lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

QUIET_VARIABLE = "SCPC_QUIET"


def quiet() -> bool:
    """Whether the environment asks for no progress bars."""
    return os.environ.get(QUIET_VARIABLE) == "1"


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str,
    initial: int = 0,
    disable: bool = False,
    leave: bool = True,
    **options: Any,
) -> tqdm:
    """A tqdm bar on stderr (disabled when ``disable`` or :func:`quiet`); ``options`` go to
    tqdm (``unit_scale``, ...)."""
    return tqdm(
        iterable,
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        leave=leave,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        disable=disable or quiet(),
        **options,
    )


def say(message: str, quiet: bool = False) -> None:
    """A line on stderr that does not break a progress bar drawn there."""
    if quiet:
        print(message, file=sys.stderr)
    else:
        tqdm.write(message, file=sys.stderr)
