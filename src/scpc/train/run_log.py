"""``train.log``: timestamped lines of a run, also shown on stderr (above any progress bar)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from scpc.progress import say


class RunLog:
    """Appends ``message`` to ``path`` with a timestamp (and ``prefix``) and echoes it."""

    def __init__(self, path: str | os.PathLike, prefix: str = "", quiet: bool = False) -> None:
        self.path, self.prefix, self.quiet = Path(path), prefix, quiet

    def __call__(self, message: str, echo: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.prefix}{message}\n")
        if echo:
            say(self.prefix + message, self.quiet)
