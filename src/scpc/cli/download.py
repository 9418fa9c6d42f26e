"""scpc-download: fetch named resources of a manifest (resumable, checksummed, extracted)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from scpc.cli.common import run
from scpc.data.download import get, read_manifest
from scpc.errors import ScpcError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scpc-download", description=__doc__)
    p.add_argument(
        "--manifest", required=True, help="resource manifest (name url algo digest [into])"
    )
    p.add_argument("--mirror", default=None, help="base URL that replaces {mirror}")
    p.add_argument(
        "--user", default=os.environ.get("SCPC_DOWNLOAD_USER"), help="HTTP basic-auth user"
    )
    p.add_argument(
        "--password",
        default=os.environ.get("SCPC_DOWNLOAD_PASSWORD"),
        help="HTTP basic-auth password",
    )
    p.add_argument(
        "--keep-archive", action="store_true", help="keep archives after extracting them"
    )
    p.add_argument("--retries", type=int, default=5)
    p.add_argument("--retry-wait", type=float, default=5.0, help="seconds; grows with each retry")
    p.add_argument("dest", type=Path)
    p.add_argument("names", nargs="+", help="resource names from the manifest")
    args = p.parse_args(argv)
    resources = read_manifest(args.manifest)
    unknown = [n for n in args.names if n not in resources]
    if unknown:
        raise ScpcError(
            f"{args.manifest}: no resource {unknown[0]!r} (known: {' '.join(resources)})"
        )
    auth = (args.user, args.password or "") if args.user else None
    for name in args.names:
        what = get(
            resources[name],
            args.dest,
            args.mirror,
            auth,
            args.keep_archive,
            args.retries,
            args.retry_wait,
        )
        print(f"scpc-download: {name}: {what}")
    return 0


def entry() -> None:
    run(main)
