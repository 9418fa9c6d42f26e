"""SUPERB phoneme recognition (PR): linear CTC over phones, phone error rate (greedy).

Head (s3prl ``downstream/ctc/libriphone.yaml``): ``Linear(upstream_dim, 256)`` then
``Linear(256, vocab)``, no nonlinearity, CTC with blank 0 (``zero_infinity``); decoding takes
the best class per frame (repeats merged, blanks dropped); PER is the edit distance over
phones, in percent of reference phones.

Targets come from one of two sources:

* ``task.lexicon: null`` (the mini corpus): the data dir's frame alignments (``ali.txt`` with
  ``phones.txt``). Runs of one phone id are merged and silence (``SIL``) is dropped, so
  ``SIL SIL AH AH SIL AH T`` gives ``AH AH T`` (two AH because a silence separated them; two
  equal phones with no silence between them in the alignment cannot be told apart and give
  one). The vocabulary is ``phones.txt`` without SIL, in its order.
* ``task.lexicon: FILE`` (LibriSpeech): each word of ``text`` is looked up in a lexicon in the
  format of openslr-11's ``librispeech-lexicon.txt`` (``WORD<TAB or spaces>PH1 PH2 ...``; the
  first pronunciation of a word is used, as s3prl does). SUPERB's vocabulary
  (s3prl ``downstream/ctc/vocab/phoneme.txt``) keeps the ARPAbet stress digits (69 phones:
  AA0 AA1 AA2 ...), and so do we by default (``strip_stress: false``; ``true`` gives the 39
  phones of the CPC alignments). SUPERB's lexicons are g2p-extended versions of the same file
  (``librispeech-lexicon-200k-g2p.txt`` + ``allothers-g2p``); openslr's covers every word of
  LibriSpeech's transcripts. A word missing from the lexicon is an error naming the lexicon,
  the word and the ``text`` line. The vocabulary is every phone of the lexicon, sorted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from scpc.data.alignment import SILENCE
from scpc.data.datadir import DataDir
from scpc.downstream.data import aligned_examples, data_examples
from scpc.downstream.task import Example, Task
from scpc.errors import ScpcError
from scpc.eval.ctc_decode import greedy_decode
from scpc.eval.metrics import edit_ops, error_rate
from scpc.nn.ctc import LinearCTC, ctc_loss

BLANK = "<blank>"


def collapse_alignment(frames: Sequence[int], silence: int = 0) -> list[int]:
    """Phone ids of frame labels: runs merged, then silence dropped."""
    out = []
    prev = None
    for p in frames:
        if p != prev and p != silence:
            out.append(p)
        prev = p
    return out


def read_lexicon(path: str | os.PathLike, strip_stress: bool = False) -> dict[str, list[str]]:
    """WORD -> phones (the word's first entry); words are upper-cased."""
    lexicon: dict[str, list[str]] = {}
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such lexicon") from None
    with f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ScpcError(f"{path}:{lineno}: expected 'WORD PHONE...', got {line.strip()!r}")
            word = fields[0].upper()
            if word not in lexicon:
                phones = fields[1:]
                lexicon[word] = [re.sub(r"\d+$", "", p) for p in phones] if strip_stress else phones
    if not lexicon:
        raise ScpcError(f"{path}: empty lexicon")
    return lexicon


def text_to_phones(
    data_dir: str | os.PathLike, lexicon: dict[str, list[str]], lexicon_path: str | os.PathLike
) -> dict[str, list[str]]:
    """utt -> the phones of its words; a word missing from the lexicon is an error."""
    d = DataDir(data_dir)
    out = {}
    # read_table refuses empty lines, so the n-th entry is on line n
    for lineno, (utt, text) in enumerate(d.table("text").items(), 1):
        phones: list[str] = []
        for word in text.split():
            pron = lexicon.get(word.upper())
            if pron is None:
                raise ScpcError(
                    f"{lexicon_path}: no pronunciation of {word!r} ({d.file('text')}:{lineno})"
                )
            phones += pron
        out[utt] = phones
    return out


class PhoneRecognition(Task):
    name = "pr"
    metric = "per"
    higher_is_better = False
    defaults: dict[str, Any] = {
        "lexicon": None,  # null: targets from ali.txt; else a librispeech-lexicon.txt-style file
        "strip_stress": False,  # lexicon phones without their stress digits (AA1 -> AA)
        "project_dim": 256,  # null: one linear layer
    }

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.source = ""

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        for split in ("train", "dev", "test"):
            if split not in data:
                raise ScpcError(f"data.{split}: the pr task needs train, dev and test data dirs")
        if cfg.get("lexicon"):
            return self._load_lexicon(data, cfg)
        return self._load_alignments(data)

    def _load_alignments(self, data: dict[str, str]) -> dict[str, list[Example]]:
        self.source = "ali"
        table, out = aligned_examples(data)
        phones = DataDir(data["train"]).file("phones.txt")
        if SILENCE not in table:
            raise ScpcError(f"{phones}: no {SILENCE} phone")
        silence = table[SILENCE]
        by_id = sorted((i, p) for p, i in table.items() if p != SILENCE)
        self.tokens = [BLANK] + [p for _, p in by_id]
        token_of = {i: k for k, (i, _) in enumerate(by_id, 1)}
        for examples in out.values():
            for ex in examples:
                ex.target = [token_of[p] for p in collapse_alignment(ex.target, silence)]
        return out

    def _load_lexicon(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        self.source = "lexicon"
        path = Path(cfg["lexicon"])
        lexicon = read_lexicon(path, cfg["strip_stress"])
        self.tokens = [BLANK] + sorted({p for pron in lexicon.values() for p in pron})
        index = {p: i for i, p in enumerate(self.tokens)}
        out = {}
        for split, d in data.items():
            phones = text_to_phones(d, lexicon, path)
            examples = data_examples(d, text=True)
            for ex in examples:
                ex.target = [index[p] for p in phones[ex.uttid]]
            out[split] = examples
        return out

    def state(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "source": self.source}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tokens, self.source = list(state["tokens"]), state["source"]

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return LinearCTC(input_dim, len(self.tokens), cfg.get("project_dim", 256))

    def loss(self, head, feats, lens, examples):
        return ctc_loss(head(feats), lens, [ex.target for ex in examples])

    def predict(self, head, feats, lens, examples):
        logprobs = head(feats).cpu()
        return [greedy_decode(logprobs[i, :n], blank=0) for i, n in enumerate(lens.tolist())]

    def score(self, split, examples, predictions):
        refs = [ex.target for ex in examples]
        scores = {"per": error_rate(refs, predictions)}
        if split == "test":  # the breakdown costs a second alignment per utterance
            ops = [edit_ops(r, h) for r, h in zip(refs, predictions)]
            total = sum(len(r) for r in refs)
            for k, name in enumerate(("sub", "del", "ins")):
                scores[name] = 100.0 * sum(o[k] for o in ops) / total
        return scores
