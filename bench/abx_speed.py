"""ABX speed: zerospeech-libriabx2 against scpc-abx on the mini corpus (fbank-80 features).

  .venv/bin/python bench/abx_speed.py [--part dev] [--device cpu] [--feats DIR]

Extracts 80-dim log filter-bank features of the part's utterances (once, into --feats), then
scores all four conditions (within/across speaker x within/any context, cosine, default
sampling) with zrc_abx2 and with scpc.eval.abx, each in one call that includes loading the
features, and prints both scores and times. scpc runs once with libriabx2's file order
(exact agreement expected) and once with its default item-file order.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scpc.audio import read_audio  # noqa: E402
from scpc.eval import abx, libriabx2  # noqa: E402
from scpc.frontend import frontend_from_config, load_frontend_config  # noqa: E402


def extract(part: str, out: Path) -> None:
    if (out / ".complete").is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    front = frontend_from_config(load_frontend_config(ROOT / "conf" / "feats" / "fbank-80.json"))
    for flac in sorted((ROOT / "corpus" / "mini" / "LibriSpeech" / part).rglob("*.flac")):
        wav = torch.from_numpy(read_audio(str(flac)))
        with torch.no_grad():
            feats, n = front(wav[None], torch.tensor([len(wav)]))
        torch.save(feats[0, : int(n[0])].clone(), out / f"{flac.stem}.pt")
    (out / ".complete").touch()


def run_zrc(feat_dir: Path, item_file: Path) -> dict[tuple[str, str], float]:
    eval_abx = libriabx2._import()
    args = eval_abx.EvalArgs(
        path_data=str(feat_dir), path_item_file=str(item_file), file_extension=".pt"
    )
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        res = eval_abx.EvalABX().eval_abx(args)
    return {(r["abx-s-condition"], r["abx-c-condition"]): float(r["score"]) for r in res}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="dev", choices=("dev", "test"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--feats", type=Path, help="feature dir (default: /tmp/bench_abx/<part>)")
    args = p.parse_args()
    feat_dir = args.feats or Path("/tmp/bench_abx") / args.part
    item_file = ROOT / "corpus" / "mini" / "abx" / f"{args.part}.item"
    extract(args.part, feat_dir)
    if not libriabx2.available():
        sys.exit("zerospeech-libriabx2 is not installed; utils/setup_venv.sh installs it")

    t0 = time.perf_counter()
    ref = run_zrc(feat_dir, item_file)
    t1 = time.perf_counter()
    walk = abx.score_abx(feat_dir, item_file, device=args.device, file_order="walk")
    t2 = time.perf_counter()
    ours = abx.score_abx(feat_dir, item_file, device=args.device)
    t3 = time.perf_counter()

    print(f"ABX on mini {args.part}: {ours.num_items} items, fbank-80, cosine, {args.device}")
    head = ("condition", "zrc_abx2 %", "scpc walk %", "scpc item %", "max |diff|")
    print(f"{head[0]:<16}{head[1]:>12}{head[2]:>13}{head[3]:>13}{head[4]:>12}")
    for spk, ctx in abx.CONDITIONS:
        z, w, o = (
            100 * ref[(spk, ctx)],
            100 * walk.get(spk, ctx).error,
            100 * ours.get(spk, ctx).error,
        )
        diff = max(abs(w - z), abs(o - z))
        print(f"{spk + '/' + ctx:<16}{z:>12.4f}{w:>13.4f}{o:>13.4f}{diff:>12.4f}")
    print(f"{'seconds':<16}{t1 - t0:>12.2f}{t2 - t1:>13.2f}{t3 - t2:>13.2f}")
    print(
        f"{'speed-up':<16}{'1.0x':>12}{(t1 - t0) / (t2 - t1):>12.1f}x{(t1 - t0) / (t3 - t2):>12.1f}x"
    )


if __name__ == "__main__":
    main()
