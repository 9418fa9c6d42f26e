"""Peak memory of scpc-a2r on one long file: the conv encoder in windows (the default) against
one pass over the whole input, each in its own process (ru_maxrss), with the outputs compared.

  .venv/bin/python bench/long_input_memory.py [--minutes 10] [--model conf/model.cpc.mini.yaml]

The model is a random initialisation of --model (scpc-init model): memory does not depend on
the weights. The file is --minutes of the mini corpus's utterances joined and repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import load_average  # noqa: E402

CHILD = r"""
import json, resource, sys, time, torch
from scpc.audio import read_audio
from scpc.models.checkpoint import load_inference_checkpoint
from scpc.models.encoders import ConvEncoder
from scpc.models.inference import encode
ckpt, wav, out, windowed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
torch.set_num_threads(2)
if not windowed:
    ConvEncoder.WINDOW_FRAMES = 1 << 62
model = load_inference_checkpoint(ckpt)
x = read_audio(wav)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tic = time.perf_counter()
with torch.inference_mode():
    rep = encode(model, [x], -1, "cpu")[0]
wall = time.perf_counter() - tic
torch.save(rep, out)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mb": peak / 1024, "before_mb": base / 1024, "seconds": wall,
                  "frames": rep.shape[0]}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", default=str(ROOT / "conf" / "model.cpc.mini.yaml"))
    args = ap.parse_args()
    import numpy as np
    import soundfile as sf
    import torch

    from scpc.audio import read_audio
    from scpc.data.datadir import read_table

    print(f"load average at start: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path("/tmp/bench_data/mini")
        if not (data / "test" / "wav.scp").is_file():
            subprocess.run([str(ROOT / "local" / "mini_data_prep.sh"), str(data)], check=True)
        parts = [read_audio(e) for e in read_table(data / "test" / "wav.scp").values()]
        audio = np.concatenate(parts)
        n = int(args.minutes * 60 * 16000)
        audio = np.tile(audio, n // len(audio) + 1)[:n]
        sf.write(tmp / "long.wav", audio, 16000, subtype="PCM_16")
        ckpt = tmp / "model.ckpt"
        subprocess.run([str(ROOT / ".venv/bin/scpc-init"), "model", args.model, str(ckpt)],
                       check=True, capture_output=True)  # fmt: skip
        rows = {}
        for name, flag in (("windowed (default)", "1"), ("one pass", "0")):
            out = tmp / f"{flag}.pt"
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(ckpt), str(tmp / "long.wav"), str(out), flag],
                capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"),
            )  # fmt: skip
            if proc.returncode:
                print(f"{name}: failed\n{proc.stderr[-2000:]}")
                return 1
            rows[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        a, b = torch.load(tmp / "1.pt"), torch.load(tmp / "0.pt")
        diff = float((a - b).abs().max())
    print(f"{args.minutes:g} min of audio, {Path(args.model).name} (random weights), 2 threads")
    print(f"{'run':<20} {'peak RSS MB':>12} {'seconds':>8} {'frames':>8}")
    for name, r in rows.items():
        print(f"{name:<20} {r['peak_mb']:>12.0f} {r['seconds']:>8.1f} {r['frames']:>8}")
    print(f"largest difference between the two outputs: {diff:.2e}")
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
