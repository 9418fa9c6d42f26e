"""ABX speed side by side: scpc-abx, fastabx 0.9.0, zerospeech-libriabx2 (mini corpus, fbank-80).

  .venv/bin/python bench/abx_speed.py [--part dev] [--rounds 3] [--threads 2]
      [--fastabx-python /tmp/peers/fastabx-venv/bin/python] [--no-zrc]

Extracts 80-dim log filter-bank features of the part's utterances (once, into --feats), then,
in rounds (A/B/C/D interleaved; medians), scores all four conditions (within/across speaker x
within/any context, cosine, default sampling), each in one call that includes loading the
features: zrc_abx2 (libriabx2, in this process), scpc.eval.abx with Libri-Light's item frames
(the default, libriabx2's scores) and with ``item_frames="full"`` (fastabx's correction), and
fastabx in its own Python 3.12 venv (bench/fastabx_peer.py; timed inside that process,
interpreter start-up and imports excluded). One warm-up call of each first (numba's compile
or cache load, fastabx's imports). Prints every score, the differences that should be small
(scpc default vs libriabx2; scpc full vs fastabx, whose groups are drawn differently), times,
speed-ups and the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from benchlib import load_average  # noqa: E402

from scpc.audio import read_audio  # noqa: E402
from scpc.eval import abx, libriabx2  # noqa: E402
from scpc.frontend import frontend_from_config, load_frontend_config  # noqa: E402

DEFAULT_FASTABX = Path("/tmp/peers/fastabx-venv/bin/python")


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


def run_zrc(feat_dir: Path, item_file: Path) -> dict[str, float]:
    eval_abx = libriabx2._import()
    args = eval_abx.EvalArgs(
        path_data=str(feat_dir), path_item_file=str(item_file), file_extension=".pt"
    )
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        res = eval_abx.EvalABX().eval_abx(args)
    return {f"{r['abx-s-condition']}/{r['abx-c-condition']}": 100 * float(r["score"]) for r in res}


def run_scpc(feat_dir: Path, item_file: Path, item_frames: str) -> dict[str, float]:
    res = abx.score_abx(feat_dir, item_file, device="cpu", item_frames=item_frames)
    return {f"{s.speaker_mode}/{s.context_mode}": 100 * s.error for s in res.scores}


def run_fastabx(python: Path, feat_dir: Path, item_file: Path, threads: int):
    cmd = [str(python), str(ROOT / "bench" / "fastabx_peer.py"), str(item_file), str(feat_dir)]
    out = subprocess.run(
        [*cmd, "--threads", str(threads)], check=True, capture_output=True, text=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["seconds"], got["scores"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="dev", choices=("dev", "test"))
    p.add_argument("--feats", type=Path, help="feature dir (default: /tmp/bench_abx/<part>)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fastabx-python", type=Path, default=DEFAULT_FASTABX)
    p.add_argument("--no-zrc", action="store_true", help="leave libriabx2 out (a minute a round)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    feat_dir = args.feats or Path("/tmp/bench_abx") / args.part
    item_file = ROOT / "corpus" / "mini" / "abx" / f"{args.part}.item"
    extract(args.part, feat_dir)
    print(f"load average at start: {load_average()}")

    runners = {}
    if not args.no_zrc:
        if not libriabx2.available():
            sys.exit("zerospeech-libriabx2 is not installed; utils/setup_venv.sh installs it")
        runners["zrc_abx2"] = lambda: run_zrc(feat_dir, item_file)
    runners["scpc"] = lambda: run_scpc(feat_dir, item_file, "librilight")
    runners["scpc full"] = lambda: run_scpc(feat_dir, item_file, "full")
    if args.fastabx_python.is_file():
        runners["fastabx"] = lambda: run_fastabx(
            args.fastabx_python, feat_dir, item_file, args.threads
        )
    else:
        print(f"no fastabx at {args.fastabx_python}: bench/README.md says how to build it")

    def timed(name):
        tic = time.perf_counter()
        got = runners[name]()
        if name == "fastabx":
            return got  # timed inside its own process
        return time.perf_counter() - tic, got

    for name in runners:  # warm-up: numba compile / cache load, imports
        if name != "zrc_abx2":
            timed(name)
    times: dict[str, list[float]] = {name: [] for name in runners}
    scores: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name in runners:
            sec, scores[name] = timed(name)
            times[name].append(sec)

    print(
        f"ABX on mini {args.part}, fbank-80, cosine, {args.threads} threads, {args.rounds} rounds"
    )
    names = list(runners)
    print(f"{'condition':<16}" + "".join(f"{n + ' %':>14}" for n in names))
    for spk, ctx in abx.CONDITIONS:
        key = f"{spk}/{ctx}"
        print(f"{key:<16}" + "".join(f"{scores[n][key]:>14.4f}" for n in names))
    for a, b in (("scpc", "zrc_abx2"), ("scpc full", "fastabx")):
        if a in scores and b in scores:
            diff = max(abs(scores[a][k] - scores[b][k]) for k in scores[a])
            print(f"max |{a} - {b}|: {diff:.4f} points")
    med = {n: statistics.median(t) for n, t in times.items()}
    print(f"{'seconds (median)':<16}" + "".join(f"{med[n]:>14.2f}" for n in names))
    for peer in ("zrc_abx2", "fastabx"):
        if peer in med:
            print(f"{'vs ' + peer:<16}" + "".join(f"{med[peer] / med[n]:>13.1f}x" for n in names))
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
