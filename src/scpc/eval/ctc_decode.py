"""CTC decoding: greedy, and prefix beam search with an optional word n-gram LM.

Inputs are per-frame log-probabilities ``(T, V)`` (torch or numpy, already log-softmaxed).

Words for the LM come from token strings (``vocab``): a token for which ``word_start`` is true
ends the word in progress and starts a new one; the other tokens continue it. A word's text is
its tokens' strings joined, with the marks ``▁``, ``|`` and whitespace removed. This covers
SentencePiece pieces (``▁the``, ``▁ca``, ``t``) and character vocabularies with a delimiter token
(``|`` or ``" "``, a word of its own that holds no characters): ``c a t | d o g`` and
``| c a t | d o g |`` both give ``cat dog``, and repeated delimiters give no empty word.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from scpc.errors import ScpcError

if TYPE_CHECKING:
    from scpc.eval.ngram import NgramLM

NEG_INF = -math.inf
_MARKS = str.maketrans("", "", "▁| \t\n")


def default_word_start(token: str) -> bool:
    """SentencePiece's ``▁`` prefix, or a ``|`` / whitespace delimiter token."""
    return token.startswith("▁") or token == "|" or (token != "" and token.isspace())


def _as_array(logprobs, ndim: int) -> np.ndarray:
    if hasattr(logprobs, "detach"):
        logprobs = logprobs.detach().cpu().double().numpy()
    a = np.asarray(logprobs, dtype=np.float64)
    if a.ndim != ndim:
        raise ScpcError(f"expected {ndim}-D log-probabilities, got shape {tuple(a.shape)}")
    return a


def _check_blank(blank: int, v: int) -> None:
    if not 0 <= blank < v:
        raise ScpcError(f"blank id {blank} outside the {v} output classes")


def greedy_decode(logprobs, blank: int = 0) -> list[int]:
    """Best token per frame, repeats collapsed, blanks dropped."""
    a = _as_array(logprobs, 2)
    _check_blank(blank, a.shape[1])
    out: list[int] = []
    prev = -1
    for t in a.argmax(axis=1).tolist():
        if t != prev and t != blank:
            out.append(t)
        prev = t
    return out


def tokens_to_words(
    tokens: Sequence[int],
    vocab: Sequence[str],
    word_start: Callable[[str], bool] | None = None,
) -> list[str]:
    """The words that token ids spell, by the rule in the module docstring."""
    word_start = word_start or default_word_start
    words: list[str] = []
    partial = ""
    for t in tokens:
        s = vocab[t]
        if word_start(s) and partial:
            words.append(partial)
            partial = ""
        partial += s.translate(_MARKS)
    if partial:
        words.append(partial)
    return words


def _lse(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


class _WordLM:
    """Word-level LM bonus of prefixes, extended one token at a time."""

    def __init__(self, lm, lm_weight, word_bonus, vocab, word_start) -> None:
        if vocab is None:
            raise ScpcError("beam search with an LM needs the token strings (vocab)")
        self.lm, self.weight, self.bonus = lm, lm_weight, word_bonus
        self.n = max(lm.order - 1, 0)
        self.text = [s.translate(_MARKS) for s in vocab]
        ws = word_start or default_word_start
        self.starts = [ws(s) for s in vocab]

    def _word(self, hist: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        gain = self.weight * self.lm.score(hist, word) + self.bonus
        return gain, (hist + (word,))[-self.n :] if self.n else ()

    def initial(self) -> tuple[float, tuple[str, ...], str]:
        """(score, last order-1 words, word in progress) of the empty prefix."""
        return 0.0, ("<s>",)[: self.n], ""

    def extend(self, state, token: int):
        score, hist, partial = state
        if self.starts[token] and partial:
            gain, hist = self._word(hist, partial)
            score, partial = score + gain, ""
        return score, hist, partial + self.text[token]

    def final(self, state) -> float:
        score, hist, partial = state
        if partial:
            gain, hist = self._word(hist, partial)
            score += gain
        return score + self.weight * self.lm.score(hist, "</s>")


def beam_search(
    logprobs,
    beam: int,
    blank: int = 0,
    lm: NgramLM | None = None,
    lm_weight: float = 0.0,
    word_bonus: float = 0.0,
    vocab: Sequence[str] | None = None,
    word_start: Callable[[str], bool] | None = None,
    *,
    top_k: int | None = None,
    prune: float = 12.0,
) -> list[int]:
    """CTC prefix beam search keeping the ``beam`` best prefixes; returns the best labelling.

    Each prefix carries the log-probabilities of its alignments ending in blank and in its
    last token, so a repeated token needs a blank between its copies. A prefix ranks by their
    log-sum plus, with ``lm``, ``lm_weight`` * LM log-prob + ``word_bonus`` per completed word
    (a word completes when the next one starts, or at the end, where ``lm_weight`` * log
    P(``</s>``) is added too). ``word_start`` defaults to :func:`default_word_start`.

    For speed, a frame tries only its ``top_k`` most probable non-blank tokens (default
    ``beam``) that lie within ``prune`` nats of its most probable class; blank, and the
    repetition of each prefix's last token, are always tried. The LM history starts at
    ``<s>``.
    """
    a = _as_array(logprobs, 2)
    t_len, v = a.shape
    _check_blank(blank, v)
    if beam < 1:
        raise ScpcError(f"beam must be at least 1, not {beam}")
    wlm = _WordLM(lm, lm_weight, word_bonus, vocab, word_start) if lm is not None else None
    if wlm is not None and len(wlm.text) != v:
        raise ScpcError(f"vocab has {len(wlm.text)} tokens but the output has {v} classes")
    k = min(top_k or beam, v - 1)

    # prefixes are nodes of a trie (ids): hashing and extending them costs O(1), not O(length)
    parent, token = [-1], [-1]
    children: dict[tuple[int, int], int] = {}
    lm_states = [wlm.initial()] if wlm is not None else []
    # node -> (log P of its alignments ending in blank, ... ending in its last token)
    beams: dict[int, tuple[float, float]] = {0: (0.0, NEG_INF)}
    scores = a.copy()
    scores[:, blank] = NEG_INF
    if k < v - 1:
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k > 0 else np.empty((t_len, 0))
    else:
        top = np.broadcast_to(np.delete(np.arange(v), blank), (t_len, v - 1))
    for t in range(t_len):
        row = a[t]
        lp = row.tolist()
        floor = row.max() - prune
        cands = [c for c in top[t].tolist() if lp[c] >= floor]
        lp_blank = lp[blank]
        nxt: dict[int, list[float]] = {}
        for node, (pb, pnb) in beams.items():
            total = _lse(pb, pnb)
            e = nxt.get(node)
            if e is None:
                e = nxt[node] = [NEG_INF, NEG_INF]
            e[0] = _lse(e[0], total + lp_blank)
            last = token[node]
            if node:
                e[1] = _lse(e[1], pnb + lp[last])
            for c in cands:
                child = children.get((node, c))
                if child is None:
                    child = children[(node, c)] = len(parent)
                    parent.append(node)
                    token.append(c)
                    if wlm is not None:
                        lm_states.append(wlm.extend(lm_states[node], c))
                ne = nxt.get(child)
                if ne is None:
                    ne = nxt[child] = [NEG_INF, NEG_INF]
                # after the same token, only a path through blank starts a new copy
                ne[1] = _lse(ne[1], (pb if c == last else total) + lp[c])
        if wlm is None:
            kept = heapq.nlargest(beam, nxt.items(), key=lambda i: _lse(*i[1]))
        else:
            kept = heapq.nlargest(beam, nxt.items(), key=lambda i: _lse(*i[1]) + lm_states[i[0]][0])
        beams = {n: (e[0], e[1]) for n, e in kept}

    def final(item) -> float:
        n, (b, nb) = item
        return _lse(b, nb) + (wlm.final(lm_states[n]) if wlm is not None else 0.0)

    node = max(beams.items(), key=final)[0]
    out: list[int] = []
    while node:
        out.append(token[node])
        node = parent[node]
    return out[::-1]
