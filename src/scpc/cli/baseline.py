"""scpc-baseline: the CTC baseline ASR on frozen representations (local/baseline_run.sh).

  scpc-baseline init BL --config conf/baseline.mini.yaml [-o bpe.vocab_size=64 ...]
  scpc-baseline bpe BL [--kaldi] TEXT...                 SentencePiece BPE -> BL/bpe.model
  scpc-baseline stats BL REPS_DIR DATA_DIR               MVN statistics -> BL/mvn.pt
  scpc-baseline train BL --phase short|full --reps R --data D --train PART --dev PART
  scpc-baseline lm ARPA --order N [--kaldi] [--tool auto|kenlm|scpc] TEXT...
  scpc-baseline decode BL --reps R --data D --dev PART --eval PART... [--lm ARPA] [--nj J]
  scpc-baseline table BL...                              WER of several baselines
  scpc-baseline get BL KEY                               a frozen config value (decode.beam)

A baseline directory BL holds config.yaml (frozen by init: later inits may change only the
decode and lm sections), bpe.model, mvn.pt, short/ and full/ (best.pt, last.ckpt),
metrics.csv, curves.png, train.log, and decode/ (hypotheses, tuning grid, results.json,
wer.<settings>.txt). Representations of part P are REPS/P/<utt>.pt; its transcripts are DATA/P/text.
``decode`` prints the WER table (sets x greedy / beam / beam + LM) on stdout; run again with
the same model, LM, sets and decoding config it only prints the table again. Progress and
logs go to stderr (SCPC_QUIET=1 drops the progress bars).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scpc.cli.common import add_override_option, run
from scpc.errors import ScpcError
from scpc.io import atomic_write
from scpc.locks import ExperimentLock
from scpc.tables import aligned


def init(args) -> int:
    from scpc.baseline import config

    overrides = dict(args.override or [])
    config.freeze(config.load(args.config, overrides), Path(args.bl) / "config.yaml")
    return 0


def bpe(args) -> int:
    from scpc.baseline import bpe, config
    from scpc.baseline.text import sentences

    b = config.read_frozen(args.bl)["bpe"]
    out = Path(args.bl) / "bpe.model"
    tok = bpe.train(
        sentences(args.text, args.kaldi),
        out,
        b["vocab_size"],
        b["character_coverage"],
        b["input_sentence_size"],
    )
    print(f"bpe: {out}: {len(tok.pieces)} pieces and the blank", file=sys.stderr)
    return 0


def stats(args) -> int:
    from scpc.baseline.data import RepSet, compute_stats
    from scpc.io import save_torch

    s = compute_stats(RepSet.open(args.reps, args.data))
    out = Path(args.bl) / "mvn.pt"
    save_torch(s, out)
    print(f"stats: {out}: {s['frames']} frames of {s['mean'].numel()} channels", file=sys.stderr)
    return 0


def _bl_parts(bl: Path):
    from scpc.baseline import config
    from scpc.baseline.bpe import Tokenizer
    from scpc.baseline.data import load_stats

    return config.read_frozen(bl), Tokenizer(bl / "bpe.model"), load_stats(bl / "mvn.pt")


def train(args) -> int:
    from scpc.baseline.data import RepSet
    from scpc.baseline.train import PhaseTrainer

    bl = Path(args.bl)
    cfg, tok, mvn = _bl_parts(bl)
    if args.device:
        cfg["train"]["device"] = args.device
    reps, data = Path(args.reps), Path(args.data)
    train_set = RepSet.open(reps / args.train, data / args.train)
    dev_set = RepSet.open(reps / args.dev, data / args.dev)
    init = bl / "short" / "best.pt" if args.phase == "full" else None
    if init is not None and not init.is_file():
        raise ScpcError(f"{init}: no such file (train the short phase first)")
    with ExperimentLock(bl, f"scpc-baseline train --phase {args.phase}"):
        trainer = PhaseTrainer(
            cfg, phase=args.phase, bl_dir=bl, train=train_set, dev=dev_set, tokenizer=tok, stats=mvn
        )
        trainer.fit(init)
    return 0


def lm(args) -> int:
    from scpc.baseline.lm import build
    from scpc.baseline.text import sentences

    use = {"auto": None, "kenlm": True, "scpc": False}[args.tool]
    tool = build(sentences(args.text, args.kaldi), args.order, args.arpa, use, args.memory)
    print(f"lm: {args.arpa}: {args.order}-gram ({tool})", file=sys.stderr)
    return 0


def decode(args) -> int:
    from scpc.baseline import decode as dec
    from scpc.baseline.data import RepSet
    from scpc.baseline.model import load_model
    from scpc.models.inference import resolve_device

    bl = Path(args.bl)
    cfg, tok, _ = _bl_parts(bl)
    d = cfg["decode"]
    beam = args.beam or d["beam"]
    model_path = bl / "full" / "best.pt"
    device = resolve_device(args.device or cfg["train"]["device"])
    model, vocab, provenance = load_model(model_path, device)
    if vocab != tok.vocab:
        raise ScpcError(f"{model_path}: trained with another BPE model than {bl / 'bpe.model'}")
    lm_model, order = None, 0
    if args.lm:
        from scpc.eval.ngram import NgramLM

        lm_model = NgramLM.read_arpa(args.lm)
        order = lm_model.order
    reps, data = Path(args.reps), Path(args.data)
    dev = RepSet.open(reps / args.dev, data / args.dev)
    evals = [RepSet.open(reps / p, data / p) for p in args.eval]
    names = [s.name for s in dec.settings_for(beam, order)]
    # what the table depends on: a re-run with the same one only prints it
    signature = {
        "model": _file_id(model_path),
        "lm": _file_id(Path(args.lm) if args.lm else None),
        "decode": {**d, "beam": beam},
        "sets": [str(reps / p) for p in [args.dev, *args.eval]],
    }
    key = "_".join(names[1:])
    table_file = bl / "decode" / f"wer.{key}.txt"
    done = dec.read_results(bl / "decode" / dec.RESULTS).get("done", {})
    if done.get(key) == json.loads(json.dumps(signature)) and table_file.is_file():
        sys.stdout.write(f"WER (%) of {bl}\n{table_file.read_text()}")
        return 0
    with ExperimentLock(bl, "scpc-baseline decode"):
        with dec.Decoder(
            model,
            vocab=vocab,
            lm=lm_model,
            prune=d["prune"],
            nj=args.nj,
            batch_size=d["batch_size"],
            device=device,
        ) as de:
            results = dec.run(
                de,
                out_dir=bl / "decode",
                dev=dev,
                evals=evals,
                beam=beam,
                lm_order=order,
                lm_weights=d["lm_weights"],
                word_bonuses=d["word_bonuses"],
                provenance={"model": str(model_path), "lm": args.lm, **provenance},
                done=(key, signature),
            )
        table = dec.wer_table(results, names)
        with atomic_write(table_file) as f:
            f.write(table)
        sys.stdout.write(f"WER (%) of {bl}\n{table}")
    return 0


def get(args) -> int:
    from scpc.baseline import config

    node = config.read_frozen(args.bl)
    for key in args.key.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ScpcError(f"{Path(args.bl) / 'config.yaml'}: no key {args.key}")
        node = node[key]
    print("null" if node is None else node)
    return 0


def _file_id(path: Path | None) -> list | None:
    """What identifies a file's version cheaply: path, size, modification time."""
    if path is None:
        return None
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def run_name(bl: Path) -> str:
    """``<model>[/version_N]:<baseline>`` from exp/<model>/version_N/baseline/<name>."""
    parts = bl.resolve().parts
    if "baseline" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("baseline")
        up = parts[i - 1]
        if up.startswith("version_") and i >= 2:
            up = f"{parts[i - 2]}/{up}"
        return f"{up}:{parts[i + 1]}" if i + 1 < len(parts) else up
    return str(bl)


def table(args) -> int:
    rows, columns = [], []
    for bl in args.runs:
        path = Path(bl) / "decode" / "results.json"
        try:
            results = json.loads(path.read_text())
        except FileNotFoundError:
            raise ScpcError(f"{path}: no such file (decode the baseline first)") from None
        except json.JSONDecodeError as e:
            raise ScpcError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        cells = {}
        for set_name, scores in results["sets"].items():
            for name, s in scores.items():
                key = (set_name, results["settings"][name]["label"])
                cells[key] = f"{s['wer']:.2f}"
                if key not in columns:
                    columns.append(key)
        rows.append((run_name(Path(bl)), cells))
    header = ["baseline", *(f"{s} {label}" for s, label in columns)]
    body = [[name, *(cells.get(c, "-") for c in columns)] for name, cells in rows]
    sys.stdout.write(aligned(header, body, rule=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="scpc-baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init", help="freeze the config of a baseline directory")
    p.add_argument("bl", help="the baseline directory")
    p.add_argument("--config", required=True, help="conf/baseline[.mini].yaml")
    add_override_option(p, "bpe.vocab_size=500")
    p.set_defaults(func=init)
    p = sub.add_parser("bpe", help="train the SentencePiece BPE model")
    p.add_argument("bl")
    p.add_argument("text", nargs="+", help="text files, one sentence a line (.gz read as gzip)")
    p.add_argument("--kaldi", action="store_true", help="Kaldi text files: drop the first field")
    p.set_defaults(func=bpe)
    p = sub.add_parser("stats", help="MVN statistics of the training representations")
    p.add_argument("bl")
    p.add_argument(
        "reps", help="the training set's representation directory (<utt>.pt or feats.scp)"
    )
    p.add_argument("data", help="the training set's Kaldi data dir (its text)")
    p.set_defaults(func=stats)
    p = sub.add_parser("train", help="train one phase (resumes an interrupted one)")
    p.add_argument("bl")
    p.add_argument("--phase", required=True, choices=("short", "full"))
    p.add_argument(
        "--reps",
        required=True,
        help="representations: REPS/<part>/<utt>.pt, or a Kaldi table REPS/<part>/feats.scp",
    )
    p.add_argument("--data", required=True, help="data dirs: DATA/<part>/text")
    p.add_argument("--train", required=True, help="the training part")
    p.add_argument("--dev", required=True, help="the validation part")
    p.add_argument("--device", help="cpu, cuda[:N] or auto (overrides train.device)")
    p.set_defaults(func=train)
    p = sub.add_parser("lm", help="a word n-gram ARPA LM (KenLM if installed, else scpc's)")
    p.add_argument("arpa", help="the output ARPA file")
    p.add_argument("text", nargs="+", help="text files, one sentence a line (.gz read as gzip)")
    p.add_argument("--order", type=int, required=True)
    p.add_argument("--kaldi", action="store_true", help="Kaldi text files: drop the first field")
    p.add_argument("--tool", choices=("auto", "kenlm", "scpc"), default="auto")
    p.add_argument("--memory", default="8G", help="lmplz -S (default: 8G)")
    p.set_defaults(func=lm)
    p = sub.add_parser("decode", help="tune on dev, decode every set, print the WER table")
    p.add_argument("bl")
    p.add_argument("--reps", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--dev", required=True, help="the tuning part (also scored)")
    p.add_argument("--eval", nargs="*", default=[], help="the other parts to score")
    p.add_argument("--lm", help="a word n-gram ARPA file (.gz allowed)")
    p.add_argument("--beam", type=int, help="beam width (overrides decode.beam)")
    p.add_argument("--nj", type=int, default=1, help="decoding processes (default: 1)")
    p.add_argument("--device", help="cpu, cuda[:N] or auto")
    p.set_defaults(func=decode)
    p = sub.add_parser("get", help="print a value of the frozen config")
    p.add_argument("bl")
    p.add_argument("key", help="a dotted key, e.g. decode.beam")
    p.set_defaults(func=get)
    p = sub.add_parser("table", help="WER of several baselines (one row each)")
    p.add_argument("runs", nargs="+", help="baseline directories")
    p.set_defaults(func=table)
    args = ap.parse_args(argv)
    if getattr(args, "nj", 1) < 1:
        ap.error("--nj must be at least 1")
    return args.func(args)


def entry() -> None:
    run(main)


if __name__ == "__main__":
    sys.exit(main())
