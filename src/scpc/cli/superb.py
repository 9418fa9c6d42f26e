"""scpc-superb: SUPERB-style probes of an scpc checkpoint (frozen upstream, learnable layer weights).

  scpc-superb train --task pr --config conf/superb.pr.mini.yaml --upstream best.ckpt --out DIR
                    [--layer N] [--finetune] [--lr X] [--device auto] [-o train.max_steps=100]
  scpc-superb evaluate DIR/dev-best.ckpt [--split test] [--data DATA_DIR] [--upstream CKPT]
  scpc-superb show DIR/results.json ...           the one-line summary of finished runs
  scpc-superb pick DIR ... [--out FILE]           best run by dev metric (learning-rate sweeps)
  scpc-superb table DIR ... [--out FILE.csv]      upstreams x tasks: the test metric of each run
  scpc-superb tasks                               the registered tasks

``train`` writes DIR/{config.yaml, train.log, metrics.csv, curves.png, last.ckpt,
dev-best.ckpt, results.json} and prints one line: task, upstream, test metric. A killed run
started again resumes from last.ckpt; a finished one (results.json with the same config) only
prints its line. Progress and logs go to stderr (SCPC_QUIET=1 drops the progress bars).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import yaml

from scpc.cli.common import add_override_option, run
from scpc.errors import ScpcError
from scpc.locks import ExperimentLock
from scpc.tables import aligned


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def read_results(path: Path) -> dict:
    if path.is_dir():
        path = path / "results.json"
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file (the run has not finished)") from None
    except json.JSONDecodeError as e:
        raise ScpcError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def train(args) -> int:
    from scpc.config import rename_deprecated
    from scpc.downstream.config import RENAMED, comparable, load_config
    from scpc.downstream.tasks import make_task
    from scpc.downstream.trainer import SuperbTrainer, summary_line

    task = make_task(args.task)
    overrides = dict(args.override or [])
    if args.lr is not None:
        overrides["train.learning_rate"] = args.lr
    if args.layer is not None:
        overrides["featurizer.layer"] = args.layer
    if args.finetune:
        overrides["upstream.finetune"] = True
    if args.device is not None:
        overrides["train.device"] = args.device
    cfg = load_config(args.config, task, overrides)
    if args.datadir is not None:  # the recipes' --datadir: data/<x> in the config is <datadir>/<x>
        for split, d in cfg["data"].items():
            if d == "data" or d.startswith("data/"):
                cfg["data"][split] = str(Path(args.datadir) / d[5:])
    out = Path(args.out)
    done = out / "results.json"
    if done.is_file() and (out / "config.yaml").is_file():
        frozen = out / "config.yaml"
        old = rename_deprecated(yaml.safe_load(frozen.read_text()), RENAMED, str(frozen))
        if comparable(old) == comparable(cfg):
            print(summary_line(read_results(done), out))
            return 0
    with ExperimentLock(out, "scpc-superb train"):
        trainer = SuperbTrainer(task, cfg, args.upstream, out, root=args.root)
        results = trainer.fit(until=args.until_step)
    if results is None:
        print(f"{task.name}: stopped at step {trainer.step} of {cfg['train']['max_steps']}; {out}")
    else:
        print(summary_line(results, out))
    return 0


def evaluate(args) -> int:
    from scpc.downstream.evaluate import evaluate_probe
    from scpc.downstream.probe import load_probe_file

    scores = evaluate_probe(
        args.checkpoint,
        split=args.split,
        data_dir=args.data,
        upstream_path=args.upstream,
        device=args.device,
        root=args.root,
    )
    task = load_probe_file(args.checkpoint)["task"]
    line = " ".join(f"{k} {v:.2f}" for k, v in scores.items())
    print(f"{task} {args.split}: {line}")
    if args.out:
        from scpc.io import atomic_write

        with atomic_write(args.out) as f:
            json.dump({"task": task, "split": args.split, "scores": scores}, f, indent=2)
            f.write("\n")
    return 0


def show(args) -> int:
    from scpc.downstream.trainer import summary_line

    for d in args.runs:
        path = Path(d)
        print(summary_line(read_results(path), path.parent if path.is_file() else path))
    return 0


def pick(args) -> int:
    """The run with the best dev metric (test for tasks without a dev set)."""
    from scpc.io import atomic_write

    runs = []
    for d in args.runs:
        r = read_results(Path(d))
        split = "dev" if r.get("dev") else "test"
        runs.append((d, r, split, r[split][r["metric"]]))
    metrics = {r["metric"] for _, r, _, _ in runs}
    if len(metrics) != 1:
        raise ScpcError(f"the runs have different metrics ({', '.join(sorted(metrics))})")
    metric = metrics.pop()
    sign = -1 if runs[0][1]["higher_is_better"] else 1
    best = min(runs, key=lambda x: (sign * x[3], x[0]))
    header = ("lr", f"dev {metric}", f"test {metric}", "run")
    rows = [
        (
            f"{r['lr']:g}",
            f"{r['dev'][metric]:.2f}" if r.get("dev") else "-",
            f"{r['test'][metric]:.2f}",
            d + ("  <- best" if d == best[0] else ""),
        )
        for d, r, _, _ in runs
    ]
    print(aligned(header, rows, left={3}), end="")
    choice = {
        "task": best[1]["task"],
        "metric": metric,
        "selected_on": best[2],
        "lr": best[1]["lr"],
        "run": best[0],
        "dev": best[1].get("dev"),
        "test": best[1]["test"],
        "runs": {d: {"lr": r["lr"], "dev": r.get("dev"), "test": r["test"]} for d, r, _, _ in runs},
    }
    if args.out:
        with atomic_write(args.out) as f:
            json.dump(choice, f, indent=2)
            f.write("\n")
    return 0


METRIC_LABELS = {"per": "PER", "wer": "WER", "eer": "EER", "accuracy": "acc"}


def selection_score(r: dict) -> float:
    """What a run is chosen by (dev metric, test for tasks without a dev set), as a
    lower-is-better number."""
    value = (r.get("dev") or r["test"])[r["metric"]]
    return -value if r["higher_is_better"] else value


def row_name(r: dict) -> str:
    """The upstream, with the probe's choices that change what is measured (one layer,
    per-utterance CMVN, fine-tuning)."""
    name = r["upstream_name"]
    if r.get("cmvn"):
        name += " cmvn"
    if r.get("layer") is not None:
        name += f" layer {r['layer']}"
    return name + (" ft" if r.get("finetune") else "")


def table(args) -> int:
    """Upstreams (rows) by tasks (columns); where several runs fill one cell (a learning-rate
    sweep), the one that scores best on dev (test for ASV) is shown."""
    from scpc.downstream.tasks import TASKS
    from scpc.io import atomic_write

    cells: dict[tuple[str, str], tuple[str, dict]] = {}
    rows: list[str] = []
    for d in args.runs:
        r = read_results(Path(d))
        key = (row_name(r), r["task"])
        if key[0] not in rows:
            rows.append(key[0])
        if key not in cells or selection_score(r) < selection_score(cells[key][1]):
            cells[key] = (d, r)
    tasks = [t for t in TASKS if any(k[1] == t for k in cells)]
    metric = {t: r["metric"] for (_, t), (_, r) in cells.items()}
    header = ["upstream"] + [f"{t} {METRIC_LABELS.get(metric[t], metric[t])}" for t in tasks]
    body = [
        [name] + [f"{cells[name, t][1]['value']:.2f}" if (name, t) in cells else "-" for t in tasks]
        for name in rows
    ]
    print(aligned(header, body, rule=True), end="")
    if args.out:
        with atomic_write(args.out) as f:
            w = csv.writer(f)
            w.writerow(("upstream", "task", "metric", "value", "lr", "run"))
            for name in rows:
                for t in tasks:
                    if (name, t) in cells:
                        d, r = cells[name, t]
                        w.writerow((name, t, r["metric"], f"{r['value']:.4f}", r["lr"], d))
    return 0


def tasks(args) -> int:
    from scpc.downstream.tasks import TASKS

    for name in TASKS:
        print(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-superb",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help="train a probe and score it on test")
    p.add_argument("--task", required=True, help="pr, asr, phone_linear, ks, sid, ... (see tasks)")
    p.add_argument("--config", required=True, help="conf/superb.<task>[.mini].yaml")
    p.add_argument(
        "--upstream",
        required=True,
        help="an scpc inference checkpoint (best.ckpt), or precomputed features as a Kaldi feats.scp",
    )
    p.add_argument("--out", required=True, help="the run directory")
    p.add_argument("--layer", type=int, help="probe this hidden state (default: weighted sum)")
    p.add_argument("--finetune", action="store_true", help="train the upstream too")
    p.add_argument("--lr", type=_number, help="learning rate (overrides train.learning_rate)")
    p.add_argument("--device", help="cpu, cuda[:N] or auto (overrides train.device)")
    add_override_option(p, "train.max_steps=100")
    p.add_argument("--until-step", type=int, help="stop after this many steps (resumable)")
    p.add_argument("--root", default=".", help="data dirs are relative to this (default: .)")
    p.add_argument("--datadir", help="take the config's data/<x> dirs from DATADIR/<x>")
    p.set_defaults(func=train)
    p = sub.add_parser("evaluate", help="score a saved probe on a split")
    p.add_argument("checkpoint", help="a run's dev-best.ckpt")
    p.add_argument("--split", default="test")
    p.add_argument("--data", help="a data dir to score instead of the config's for --split")
    p.add_argument(
        "--upstream", help="the upstream checkpoint (default: the path it was trained with)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--root", default=".")
    p.add_argument("--out", help="write the scores as JSON")
    p.set_defaults(func=evaluate)
    p = sub.add_parser("show", help="the summary line of finished runs")
    p.add_argument("runs", nargs="+", help="run directories or results.json files")
    p.set_defaults(func=show)
    p = sub.add_parser("pick", help="the best run by dev metric, with a table")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", help="write the choice as JSON")
    p.set_defaults(func=pick)
    p = sub.add_parser("table", help="an aligned table of upstreams by tasks")
    p.add_argument("runs", nargs="+", help="run directories or results.json files")
    p.add_argument("--out", help="also write the table as CSV (one row per upstream and task)")
    p.set_defaults(func=table)
    p = sub.add_parser("tasks", help="list the tasks")
    p.set_defaults(func=tasks)
    args = ap.parse_args(argv)
    return args.func(args)


def entry() -> None:
    run(main)


if __name__ == "__main__":
    sys.exit(main())
