"""SUPERB speech recognition (ASR): character CTC on a BiLSTM, word error rate.

Head (s3prl ``downstream/asr/config.yaml``): ``Linear(upstream_dim, 1024)``, then two
bidirectional LSTM layers of 1024 units per direction (dropout 0.2 after each), then a linear
layer to the characters; CTC with blank 0. SpecAugment on the featurized upstream output is
the trainer's (``specaug:`` in the config; on in ``conf/superb.asr.yaml`` as in SUPERB).

Tokens: blank, the word delimiter ``|``, then every character of the training transcripts
(sorted). A transcript ``THE CAT`` is ``T H E | C A T``. Characters of dev/test transcripts
unseen in training are left out of their targets (which only give the dev loss); the scores
compare words with the transcripts as written.

Scores: ``wer`` and ``cer`` of greedy decoding (SUPERB's number without a language model),
and on the splits in ``beam_splits`` (test by default, as beam search is slow) ``wer_beam``:
CTC prefix beam search of width ``beam`` with an optional word n-gram ARPA LM (``lm``,
``lm_weight``, ``word_bonus``; SUPERB's LM setting is beam 5, weight 2, word score -1).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scpc.data.datadir import DataDir
from scpc.downstream.data import data_examples
from scpc.downstream.task import Example, Task
from scpc.downstream.tasks.pr import BLANK
from scpc.errors import ScpcError
from scpc.eval.ctc_decode import beam_search, greedy_decode, tokens_to_words
from scpc.eval.metrics import char_error_rate, word_error_rate
from scpc.nn.ctc import BiLSTMCTC, ctc_loss

DELIMITER = "|"


class SpeechRecognition(Task):
    name = "asr"
    metric = "wer"
    higher_is_better = False
    defaults: dict[str, Any] = {
        "project_dim": 1024,
        "hidden": [1024, 1024],  # units per direction of each BiLSTM layer
        "dropout": 0.2,
        "beam": 5,  # beam search width for wer_beam; 0: greedy only
        "beam_splits": ["test"],  # splits also decoded with beam search
        "lm": None,  # word n-gram ARPA file for beam search (e.g. LibriSpeech's 4-gram)
        "lm_weight": 2.0,
        "word_bonus": -1.0,
    }

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.cfg: dict[str, Any] = dict(self.defaults)
        self.refs: dict[str, dict[str, str]] = {}  # split -> utt -> transcript
        self._lm = None

    def encode(self, text: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.tokens)}
        out: list[int] = []
        for word in text.split():
            if out:
                out.append(index[DELIMITER])
            out += [index[c] for c in word if c in index]
        return out

    def load(self, data: dict[str, str], cfg: dict[str, Any]) -> dict[str, list[Example]]:
        self.cfg = dict(cfg)
        for split in ("train", "dev", "test"):
            if split not in data:
                raise ScpcError(f"data.{split}: the asr task needs train, dev and test data dirs")
        texts = {split: DataDir(d).table("text") for split, d in data.items()}
        chars = sorted({c for t in texts["train"].values() for c in t if not c.isspace()})
        self.tokens = [BLANK, DELIMITER] + [c for c in chars if c != DELIMITER]
        out = {}
        for split, d in data.items():
            examples = data_examples(d, text=True)
            for ex in examples:
                ex.target = self.encode(texts[split][ex.uttid])
            self.refs[split] = {u: " ".join(t.split()) for u, t in texts[split].items()}
            out[split] = examples
        return out

    def state(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "cfg": dict(self.cfg)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tokens, self.cfg = list(state["tokens"]), dict(state["cfg"])

    def build_head(self, input_dim: int, downsample_rate: int, cfg: dict[str, Any]) -> nn.Module:
        return BiLSTMCTC(
            input_dim, len(self.tokens), cfg["project_dim"], cfg["hidden"], cfg["dropout"]
        )

    def loss(self, head, feats, lens, examples):
        return ctc_loss(head(feats, lens), lens, [ex.target for ex in examples])

    def predict(self, head, feats, lens, examples):
        # log-probabilities: score() decodes them, greedily and (on beam_splits) with a beam
        logprobs = head(feats, lens).cpu()
        return [logprobs[i, :n].clone() for i, n in enumerate(lens.tolist())]

    def text(self, ids: list[int]) -> str:
        return " ".join(tokens_to_words(ids, self.tokens, lambda t: t == DELIMITER))

    def language_model(self):
        if self._lm is None and self.cfg.get("lm"):
            from scpc.eval.ngram import NgramLM

            self._lm = NgramLM.read_arpa(self.cfg["lm"])
        return self._lm

    def score(self, split, examples, predictions):
        table = self.refs.get(split, {})
        refs = [table.get(ex.uttid) or self.text(ex.target) for ex in examples]
        hyps = [self.text(greedy_decode(lp, blank=0)) for lp in predictions]
        scores = {"wer": word_error_rate(refs, hyps), "cer": char_error_rate(refs, hyps)}
        beam = self.cfg.get("beam", 0)
        if beam and split in self.cfg.get("beam_splits", ()):
            lm = self.language_model()
            beams = [
                self.text(
                    beam_search(
                        lp,
                        beam,
                        blank=0,
                        lm=lm,
                        lm_weight=self.cfg["lm_weight"] if lm is not None else 0.0,
                        word_bonus=self.cfg["word_bonus"] if lm is not None else 0.0,
                        vocab=self.tokens,
                        word_start=lambda t: t == DELIMITER,
                    )
                )
                for lp in predictions
            ]
            scores["wer_beam"] = word_error_rate(refs, beams)
        return scores
