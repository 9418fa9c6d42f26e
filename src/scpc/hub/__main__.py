"""python -m scpc.hub run_downstream [run_downstream.py options]

s3prl's run_downstream.py with scpc's upstreams registered (no fork of s3prl needed), e.g.

    python -m scpc.hub run_downstream -m train -u scpc_local -k exp/cpc.mini/version_0/best.ckpt \\
        -d ctc -c downstream/ctc/libriphone.yaml -p result/pr_cpc.mini

-u scpc_local takes a best.ckpt (-k), scpc_url a URL, scpc_custom either; -g names an
optional model_config YAML (layers, pca). Relative -c paths are s3prl's: run it from the
directory holding s3prl's downstream/ (or pass full paths).
"""

from __future__ import annotations

import sys

from scpc.errors import ScpcError
from scpc.hub import import_s3prl, register

COMMANDS = ("run_downstream",)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv or argv[0] not in COMMANDS:
        raise ScpcError(
            "usage: python -m scpc.hub run_downstream [run_downstream.py options] (see --help)"
        )
    register()
    runner = import_s3prl(f"s3prl.{argv[0]}")
    sys.argv = [f"{argv[0]}.py", *argv[1:]]  # s3prl parses sys.argv itself
    runner.main()
    return 0


if __name__ == "__main__":
    from scpc.cli.common import run

    sys.argv[0] = "scpc.hub"  # the program name in one-line errors
    run(main)
