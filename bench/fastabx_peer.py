"""fastabx's side of bench/abx_speed.py: run by the peer's own Python 3.12 venv (bench/README.md).

  <fastabx venv>/bin/python bench/fastabx_peer.py ITEM_FILE FEAT_DIR [--threads 2] [--nosub]

Loads the features once (Dataset.from_item, 100 Hz) and scores the four ZeroSpeech conditions
as fastabx.zerospeech_abx does (its default subsampling: 10 per group, 5 X speakers, seed 0;
--nosub: none), cosine ("angular"), then prints one JSON line: the error (%) of each condition
and the seconds taken, loading included, interpreter start-up and imports excluded. It imports
nothing from scpc. Set FASTABX_WITH_LIBRILIGHT_BUG=1 for fastabx's Libri-Light frames.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from fastabx import Dataset, Score, Subsampler, Task

CONDITIONS = {  # (speaker, context) -> (by, across), as fastabx.zerospeech_abx sets them
    ("within", "within"): (["prev-phone", "next-phone", "speaker"], None),
    ("across", "within"): (["prev-phone", "next-phone"], ["speaker"]),
    ("within", "any"): (["speaker"], None),
    ("across", "any"): (None, ["speaker"]),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("item_file")
    p.add_argument("feat_dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nosub", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    dataset = Dataset.from_item(
        args.item_file, args.feat_dir, 100, extension=".pt", device="cpu", progress=False
    )
    scores = {}
    for (speaker, context), (by, across) in CONDITIONS.items():
        if args.nosub:
            sub = Subsampler(None, None, 0)
        else:
            sub = Subsampler(10, 5 if speaker == "across" else None, 0)
        task = Task(dataset, on="#phone", by=by, across=across, subsampler=sub)
        levels = ([("next-phone", "prev-phone")] if context == "within" else []) + ["speaker"]
        score = Score(task, "angular", progress=False).collapse(levels=levels)
        scores[f"{speaker}/{context}"] = 100 * score
    print(json.dumps({"seconds": time.perf_counter() - tic, "scores": scores}))


if __name__ == "__main__":
    main()
