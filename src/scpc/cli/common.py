"""What every entry point shares: one-line errors, exit codes, the allocator setting."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from scpc.errors import ScpcError, StoppedBySignal
from scpc.io import DISK_FULL
from scpc.malloc import fix_mmap_threshold
from scpc.processes import watch_launcher


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main``; a ScpcError becomes ``prog: message`` on stderr and exit status 1, a
    training stopped by a signal (state saved) exit status 128 + the signal."""
    prog = os.path.basename(sys.argv[0])
    fix_mmap_threshold()  # tensors of changing shapes: see scpc.malloc
    watch_launcher()  # end with utils/run_local.sh, even when it is SIGKILLed
    try:
        sys.exit(main(argv) or 0)
    except ScpcError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(1)
    except StoppedBySignal as e:
        print(f"{prog}: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except OSError as e:  # a read-only dir, a full disk...: the file and the reason, one line
        if e.filename is None:
            raise
        full = e.errno in DISK_FULL
        why = e.strerror + ("; make room and run again" if full else "")
        print(f"{prog}: {e.filename}: {why}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)


def key_value(text: str) -> tuple[str, object]:
    """argparse type of ``-o section.key=value`` overrides; the value is read as YAML."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def add_override_option(parser: argparse.ArgumentParser, example: str) -> None:
    """``-o/--override KEY=VALUE`` (repeatable): config keys set on the command line."""
    parser.add_argument(
        "-o",
        "--override",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help=f"set a config key, e.g. -o {example} (repeatable)",
    )
