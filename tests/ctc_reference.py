"""The pure-Python CTC prefix beam search that scpc shipped until the compiled one replaced it.

Kept as the reference the compiled search (scpc.eval.ctc_beam_kernel) must match hypothesis
for hypothesis: tests/test_ctc_decode.py decodes random inputs with both, and
bench/baseline_speed.py times the two side by side.

``tie_order=False`` is the search as it shipped: a frame's candidate tokens come from
``np.argpartition``, whose order (and choice among exactly equal log-probabilities at the top_k
boundary) is numpy's. ``tie_order=True`` orders them as the compiled search does (most probable
first, ties to the lower id), which only matters where log-probabilities are exactly equal.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

import numpy as np

from scpc.errors import ScpcError
from scpc.eval.ctc_decode import _MARKS, _as_array, _check_blank, default_word_start

NEG_INF = -math.inf


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


def reference_beam_search(
    logprobs,
    beam: int,
    blank: int = 0,
    lm=None,
    lm_weight: float = 0.0,
    word_bonus: float = 0.0,
    vocab: Sequence[str] | None = None,
    word_start: Callable[[str], bool] | None = None,
    *,
    top_k: int | None = None,
    prune: float = 12.0,
    tie_order: bool = False,
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
    if tie_order:
        ids = np.arange(v)
        top = np.array([np.lexsort((ids, -row))[:k] for row in scores], dtype=np.int64)
        top = top.reshape(t_len, k)
    elif k < v - 1:
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
