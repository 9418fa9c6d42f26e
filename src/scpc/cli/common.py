"""What every entry point shares: one-line errors and exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from scpc.errors import ScpcError


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main``; a ScpcError becomes ``prog: message`` on stderr and exit status 1."""
    prog = os.path.basename(sys.argv[0])
    try:
        sys.exit(main(argv) or 0)
    except ScpcError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
