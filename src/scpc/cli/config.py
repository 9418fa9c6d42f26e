"""scpc-config: model configs.

    scpc-config defaults                              # the full default tree (YAML)
    scpc-config check conf/model.cpc.small.yaml       # unknown keys, wrong types, choices
    scpc-config freeze conf/model.cpc.small.yaml conf/feats exp/cpc.small/version_0/model.yaml
    scpc-config freeze -o training.seed=3 conf/model.cpc.csa4.yaml conf/feats exp/cpc.csa4.seed3/version_0/model.yaml
    scpc-config get exp/cpc.small/version_0/model.yaml feat_type

freeze writes the defaults overlaid with the conf file, with the front-end config of
conf/feats/<feat_type>.json copied in, and any -o KEY=VALUE overrides set (run.sh --seed
sets training.seed so). If the frozen file exists it is kept (it defines the experiment) and
any difference from what conf/ (and the overrides) would give now is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scpc import config as cfg
from scpc.cli.common import add_override_option, run
from scpc.errors import ScpcError
from scpc.io import atomic_write


def expand(conf_file: Path, feats_dir: Path, overrides: dict | None = None) -> cfg.Config:
    from scpc.frontend import load_frontend_config

    c = cfg.load(conf_file, overrides)
    expected = conf_file.name.removeprefix("model.").removesuffix(".yaml")
    if c["name"] and c["name"] != expected:
        raise ScpcError(f"{conf_file}: name {c['name']!r} does not match the file name")
    c["name"] = expected
    if c["frontend"] is None:
        c["frontend"] = load_frontend_config(feats_dir / f"{c['feat_type']}.json")
    return c


def freeze(conf_file: Path, feats_dir: Path, out: Path, overrides: dict | None = None) -> int:
    now = expand(conf_file, feats_dir, overrides)
    if out.is_file():
        frozen = cfg.load(out)
        if frozen != now:
            print(
                f"scpc-config: note: {conf_file} differs from the frozen {out}; using the "
                "frozen config (start a new --version to use the new one):\n"
                + cfg.diff(frozen, now, str(out), str(conf_file)),
                file=sys.stderr,
            )
        return 0
    with atomic_write(out) as f:
        with_ = "".join(f" {k}={v}" for k, v in (overrides or {}).items())
        f.write(f"# frozen from {conf_file}{' with' + with_ if with_ else ''}; ")
        f.write("this file defines the experiment\n")
        f.write(cfg.dump(now))
    return 0


def get(path: Path, key: str) -> int:
    value: object = cfg.load(path)
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ScpcError(f"{path}: no key {key}")
        value = value[part]
    print("" if value is None else value)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("defaults", help="print the default config")
    p = sub.add_parser("check", help="check a config file")
    p.add_argument("conf", type=Path)
    p = sub.add_parser("freeze", help="freeze conf/model.<name>.yaml into an experiment")
    p.add_argument("conf", type=Path)
    p.add_argument("feats_dir", type=Path, help="where <feat_type>.json front-ends are")
    p.add_argument("out", type=Path)
    add_override_option(p, "training.seed=3")
    p = sub.add_parser("get", help="print one (dotted) key")
    p.add_argument("conf", type=Path)
    p.add_argument("key")
    args = ap.parse_args(argv)
    if args.cmd == "defaults":
        print(cfg.dump(cfg.defaults()), end="")
        return 0
    if args.cmd == "check":
        cfg.load(args.conf)
        return 0
    if args.cmd == "freeze":
        return freeze(args.conf, args.feats_dir, args.out, dict(args.override or []))
    return get(args.conf, args.key)


def entry() -> None:
    run(main)
