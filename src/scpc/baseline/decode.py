"""Decoding a trained baseline: greedy, beam search, and beam search with the word LM.

For each evaluation set the model's log-probabilities are decoded with every setting:
``greedy``, ``beam<W>`` (prefix beam search of width W, no LM) and, with an LM,
``beam<W>_lm<N>`` (the N-gram LM with the weight and word bonus tuned on dev). Tuning decodes
the dev set on the grid ``decode.lm_weights`` x ``decode.word_bonuses`` and takes the lowest
WER (the first of equals in grid order). Without an LM there is nothing to tune: the weight
and bonus only act through the LM (the reference searched a bonus grid that changed nothing).

Utterances are decoded by ``nj`` worker processes; log-probabilities are computed a batch at
a time, so memory does not grow with the set.

Outputs in ``<bl>/decode/``: ``<set>/<setting>.hyp.txt`` (Kaldi text), ``tuning.<setting>.csv``,
and ``results.json`` (WER and CER of every set and setting, the tuned values; decoding with
another width or LM adds to it). Word error rates are the usual corpus-level ones (edit
distance over the total reference words, uniform costs, in percent).
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scpc.baseline.data import RepSet
from scpc.baseline.model import infer
from scpc.errors import ScpcError
from scpc.eval.ctc_decode import beam_search, greedy_decode, tokens_to_words
from scpc.eval.metrics import char_error_rate, word_error_rate
from scpc.io import atomic_write
from scpc.progress import progress_bar
from scpc.tables import aligned

RESULTS = "results.json"


@dataclass(frozen=True)
class Setting:
    name: str
    beam: int = 0  # 0: greedy
    lm: bool = False
    lm_weight: float = 0.0
    word_bonus: float = 0.0

    @property
    def label(self) -> str:
        """Column heading: greedy, beam 10, beam 10 + 4-gram."""
        if not self.beam:
            return "greedy"
        return f"beam {self.beam}" + (f" + {self.name.rsplit('lm', 1)[1]}-gram" if self.lm else "")


def settings_for(beam: int, lm_order: int, lm_weight: float = 0.0, word_bonus: float = 0.0):
    """greedy, beam<W>, and (with an LM) beam<W>_lm<N> at the given weight and bonus."""
    out = [Setting("greedy"), Setting(f"beam{beam}", beam)]
    if lm_order:
        out.append(Setting(f"beam{beam}_lm{lm_order}", beam, True, lm_weight, word_bonus))
    return out


# ---------------------------------------------------------------------------- workers

_WORKER: dict[str, Any] = {}


def _set_decoding(vocab: list[str], blank: int, prune: float, lm) -> None:
    _WORKER.update(vocab=vocab, blank=blank, prune=prune, lm=lm)


def _init_worker(*decoding) -> None:
    torch.set_num_threads(1)  # nj workers share the cores; each decodes in numpy anyway
    _set_decoding(*decoding)


def _decode_utterance(job: tuple[np.ndarray, Sequence[Setting]]) -> list[str]:
    """The words of one utterance under each setting."""
    logp, settings = job
    w = _WORKER
    out = []
    for s in settings:
        if not s.beam:
            ids = greedy_decode(logp, blank=w["blank"])
        else:
            ids = beam_search(
                logp,
                s.beam,
                blank=w["blank"],
                lm=w["lm"] if s.lm else None,
                lm_weight=s.lm_weight,
                word_bonus=s.word_bonus,
                vocab=w["vocab"],
                prune=w["prune"],
            )
        out.append(" ".join(tokens_to_words(ids, w["vocab"])))
    return out


class Decoder:
    """Decodes representation sets with one model in ``nj`` processes (1: in this one)."""

    def __init__(
        self,
        model,
        vocab: list[str],
        lm=None,
        prune: float = 10.0,
        nj: int = 1,
        batch_size: int = 32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.model, self.vocab, self.lm = model, vocab, lm
        self.batch_size, self.device = batch_size, device
        init = (vocab, len(vocab) - 1, prune, lm)
        self.pool = None
        if nj > 1:
            # fork: workers share the LM without pickling it
            self.pool = multiprocessing.get_context("fork").Pool(nj, _init_worker, init)
        else:  # in this process, whose threads the model's forward pass keeps
            _set_decoding(*init)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
        self.close()

    def hypotheses(self, reps: RepSet, settings: Sequence[Setting]) -> list[dict[str, str]]:
        """Per setting, utterance -> hypothesis words."""
        if any(s.lm for s in settings) and self.lm is None:
            raise ScpcError("an LM setting without an LM")
        out: list[dict[str, str]] = [{} for _ in settings]
        bar = progress_bar(total=len(reps), desc=f"decode {reps.name}", unit="utt")
        for idx, logp, lens in infer(self.model, reps, self.batch_size, self.device):
            jobs = [(logp[b, :n].numpy(), settings) for b, n in enumerate(lens.tolist())]
            if self.pool is not None:
                words = self.pool.map(_decode_utterance, jobs, chunksize=1)
            else:
                words = [_decode_utterance(j) for j in jobs]
            for i, per_setting in zip(idx, words):
                for d, w in zip(out, per_setting):
                    d[reps.utts[i]] = w
            bar.update(len(idx))
        bar.close()
        return out


def score(reps: RepSet, hyps: dict[str, str]) -> dict[str, float]:
    """WER and CER (percent) of a set's hypotheses, and its reference word count."""
    h = [hyps[u] for u in reps.utts]
    return {
        "wer": word_error_rate(reps.texts, h),
        "cer": char_error_rate(reps.texts, h),
        "words": sum(len(t.split()) for t in reps.texts),
    }


def write_hyps(path: Path, reps: RepSet, hyps: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        for u in reps.utts:
            f.write(f"{u} {hyps[u]}".rstrip() + "\n")


def tune(
    decoder: Decoder,
    dev: RepSet,
    beam: int,
    lm_order: int,
    lm_weights: Sequence[float],
    word_bonuses: Sequence[float],
    out: Path,
) -> tuple[Setting, dict[Setting, dict[str, str]]]:
    """The grid on dev: the best LM setting, and every setting's dev hypotheses (the grid's
    and greedy/beam without LM, so dev needs no second pass)."""
    grid = [
        Setting(f"beam{beam}_lm{lm_order}", beam, True, w, b)
        for w in lm_weights
        for b in word_bonuses
    ]
    plain = settings_for(beam, 0)
    results = decoder.hypotheses(dev, plain + grid)
    hyps = dict(zip(plain + grid, results))
    rows, best, best_wer = [], grid[0], float("inf")
    for s in grid:
        wer = score(dev, hyps[s])["wer"]
        rows.append({"lm_weight": s.lm_weight, "word_bonus": s.word_bonus, "wer": f"{wer:.2f}"})
        if wer < best_wer:
            best, best_wer = s, wer
    with atomic_write(out) as f:
        w = csv.DictWriter(f, ["lm_weight", "word_bonus", "wer"])
        w.writeheader()
        w.writerows(rows)
    return best, hyps


def read_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"sets": {}, "settings": {}}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise ScpcError(f"{path}: unreadable results (remove it to decode again)") from None


def run(
    decoder: Decoder,
    out_dir: str | os.PathLike,
    dev: RepSet,
    evals: Sequence[RepSet],
    beam: int,
    lm_order: int,
    lm_weights: Sequence[float],
    word_bonuses: Sequence[float],
    provenance: dict[str, Any] | None = None,
    done: tuple[str, Any] | None = None,
) -> dict[str, Any]:
    """Tune on ``dev`` (with an LM), decode ``dev`` and ``evals``; update ``results.json``.

    ``done``: (key, signature) recorded under ``results["done"]`` once everything is written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = read_results(out / RESULTS)
    if lm_order:
        best, dev_hyps = tune(
            decoder,
            dev=dev,
            beam=beam,
            lm_order=lm_order,
            lm_weights=lm_weights,
            word_bonuses=word_bonuses,
            out=out / f"tuning.beam{beam}_lm{lm_order}.csv",
        )
        settings = settings_for(beam, lm_order, best.lm_weight, best.word_bonus)
        print(
            f"decode: tuned on {dev.name}: LM weight {best.lm_weight:g}, word bonus "
            f"{best.word_bonus:g}",
            file=sys.stderr,
        )
    else:
        settings = settings_for(beam, 0)
        dev_hyps = dict(zip(settings, decoder.hypotheses(dev, settings)))
    for s in settings:
        results["settings"][s.name] = {**asdict(s), "label": s.label, "tuned_on": dev.name}
    for reps in [dev, *[r for r in evals if r.name != dev.name]]:
        if reps is dev:
            per_setting = [dev_hyps[s] for s in settings]
        else:
            per_setting = decoder.hypotheses(reps, settings)
        scores = results["sets"].setdefault(reps.name, {})
        for s, hyps in zip(settings, per_setting):
            write_hyps(out / reps.name / f"{s.name}.hyp.txt", reps, hyps)
            scores[s.name] = score(reps, hyps)
    results["dev"] = dev.name
    results["order"] = [dev.name, *[r.name for r in evals if r.name != dev.name]]
    if provenance:
        results["provenance"] = provenance
    if done is not None:
        results.setdefault("done", {})[done[0]] = done[1]
    with atomic_write(out / RESULTS) as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    return results


def wer_table(results: dict[str, Any], settings: Sequence[str] | None = None) -> str:
    """Sets x settings, WER in percent (the dev set marked when it tuned an LM column)."""
    names = list(settings or results["settings"])
    header = ["set", *(results["settings"][n]["label"] for n in names)]
    tuned = any(results["settings"][n]["lm"] for n in names)
    rows = []
    for set_name in results.get("order", list(results["sets"])):
        scores = results["sets"].get(set_name, {})
        label = set_name + (" (tuning)" if tuned and set_name == results.get("dev") else "")
        rows.append([label, *(f"{scores[n]['wer']:.2f}" if n in scores else "-" for n in names)])
    return aligned(header, rows, rule=True)
