"""The compiled loop of CTC prefix beam search (numba) behind
:func:`scpc.eval.ctc_decode.beam_search`.

Written in numba because the search is a loop over frames x prefixes x candidate tokens with
dictionary lookups: vectorising it with numpy or torch costs more in call overhead than the
work, and an established decoder (flashlight-text) scores words against a lexicon, a different
search whose hypotheses would not be the same as the ones this toolkit has always given. The
loop does exactly the arithmetic of the pure-Python search it replaced (same additions in the
same order, the same stable ranking of ties), so hypotheses are identical: tests/ keeps that
search as the reference and compares the two.

Prefixes are nodes of a trie (node 0 the empty prefix). With an LM each node also holds its
word-LM state: accumulated score, the ids of the last ``order - 1`` completed words, and the
spelling-trie node of the word in progress (0: none yet; -1: spells no vocabulary word).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NEG_INF = -math.inf
LN10 = math.log(10.0)
LOG10_ZERO = -99.0


@njit(cache=True, inline="always")
def _lse(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


@njit(cache=True)
def _find(keys: np.ndarray, values: np.ndarray, key: int) -> int:
    i = np.searchsorted(keys, key)
    if i < keys.shape[0] and keys[i] == key:
        return values[i]
    return -1


@njit(cache=True)
def _log10(ctx, n_ctx, word, n_words, grams):
    """NgramLM._log10: the first history suffix that has the n-gram, plus the backoffs before."""
    gram_keys, gram_child, gram_prob, has_prob, gram_backoff = grams
    total = 0.0
    for start in range(n_ctx + 1):
        node = 0
        for j in range(start, n_ctx):
            node = _find(gram_keys, gram_child, node * n_words + ctx[j])
            if node < 0:
                break
        if node >= 0:
            full = _find(gram_keys, gram_child, node * n_words + word)
            if full >= 0 and has_prob[full]:
                return total + gram_prob[full]
            total += gram_backoff[node]
    return total + LOG10_ZERO


@njit(cache=True)
def _complete_word(src, hl, word, dest, n, lm_weight, word_bonus, n_words, grams):
    """_WordLM._word: the gain of ``word`` after history ``src[:hl]``; writes the new history
    (the last ``n`` words) into ``dest``, which already holds ``src[:hl]``; returns the gain
    and the new history's length."""
    lp10 = _log10(src, hl, word, n_words, grams)
    gain = lm_weight * (lp10 * LN10) + word_bonus
    if n > 0:
        if hl < n:
            dest[hl] = word
            hl += 1
        else:
            for i in range(n - 1):
                dest[i] = src[i + 1]
            dest[n - 1] = word
    return gain, hl


@njit(cache=True, inline="always")
def _slot(node, t, m, slot_of, slot_frame, nxt_node, nxt_b, nxt_nb):
    """The candidate slot of ``node`` in frame ``t``, opened (the m-th) on first sight."""
    if slot_frame[node] == t:
        return slot_of[node], m
    slot_of[node], slot_frame[node] = m, t
    nxt_node[m], nxt_b[m], nxt_nb[m] = node, NEG_INF, NEG_INF
    return m, m + 1


@njit(cache=True)
def _grow(a: np.ndarray, n: int) -> np.ndarray:
    if n < a.shape[0]:
        return a
    b = np.empty((a.shape[0] * 2,) + a.shape[1:], dtype=a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def beam_search_kernel(
    a,  # (T, V) float64 log-probabilities
    top_k,  # tokens tried per frame: the top_k most probable non-blank within ``prune``
    beam,
    blank,
    prune,
    use_lm,
    lm_weight,
    word_bonus,
    order,
    n_words,
    unk,
    bos,
    eos,
    gram_keys,
    gram_child,
    gram_prob,
    has_prob,
    gram_backoff,
    char_keys,
    char_child,
    char_word,
    tok_starts,
    tok_offsets,
    tok_codes,
):
    t_len, v = a.shape
    n = max(order - 1, 0)
    grams = (gram_keys, gram_child, gram_prob, has_prob, gram_backoff)
    cap = 1024
    parent = np.empty(cap, np.int64)
    token = np.empty(cap, np.int64)
    lm_score = np.empty(cap, np.float64)
    hist = np.empty((cap, max(n, 1)), np.int64)
    hist_len = np.empty(cap, np.int64)
    partial = np.empty(cap, np.int64)
    parent[0], token[0] = -1, -1
    lm_score[0], hist_len[0], partial[0] = 0.0, 0, 0
    if n > 0:
        hist[0, 0] = bos
        hist_len[0] = 1
    n_nodes = 1
    children = {np.int64(0): np.int64(0)}
    del children[0]

    beam_node = np.zeros(beam, np.int64)
    beam_pb = np.zeros(beam, np.float64)
    beam_pnb = np.full(beam, NEG_INF)
    n_beam = 1
    width = max(min(top_k, v - 1), 0)
    max_next = beam * (width + 1)
    nxt_node = np.empty(max_next, np.int64)
    nxt_b = np.empty(max_next, np.float64)
    nxt_nb = np.empty(max_next, np.float64)
    # slot of a node in this frame's candidates: valid where slot_frame[node] == t
    slot_of = np.zeros(cap, np.int64)
    slot_frame = np.full(cap, -1, np.int64)
    cands = np.empty(width, np.int64)
    window = np.empty(v, np.int64)
    window_lp = np.empty(v, np.float64)
    ctx = np.empty(max(n, 1) + 1, np.int64)

    for t in range(t_len):
        row = a[t]
        floor = row.max() - prune
        n_win = 0
        for c in range(v):
            if c != blank and row[c] >= floor:
                window[n_win], window_lp[n_win] = c, -row[c]
                n_win += 1
        # most probable first, ties to the lower class id (a stable sort of the ids in order)
        by_prob = np.argsort(window_lp[:n_win], kind="mergesort")
        n_cands = min(n_win, width)
        for j in range(n_cands):
            cands[j] = window[by_prob[j]]
        lp_blank = row[blank]
        m = 0
        for bi in range(n_beam):
            node = beam_node[bi]
            pb, pnb = beam_pb[bi], beam_pnb[bi]
            total = _lse(pb, pnb)
            s, m = _slot(node, t, m, slot_of, slot_frame, nxt_node, nxt_b, nxt_nb)
            nxt_b[s] = _lse(nxt_b[s], total + lp_blank)
            last = token[node]
            if node:
                nxt_nb[s] = _lse(nxt_nb[s], pnb + row[last])
            for j in range(n_cands):
                c = cands[j]
                key = node * v + c
                if key in children:
                    child = children[key]
                else:
                    child = n_nodes
                    n_nodes += 1
                    children[key] = child
                    parent = _grow(parent, child)
                    token = _grow(token, child)
                    lm_score = _grow(lm_score, child)
                    hist = _grow(hist, child)
                    hist_len = _grow(hist_len, child)
                    partial = _grow(partial, child)
                    slot_of = _grow(slot_of, child)
                    if child >= slot_frame.shape[0]:
                        grown = np.full(slot_frame.shape[0] * 2, -1, np.int64)
                        grown[: slot_frame.shape[0]] = slot_frame
                        slot_frame = grown
                    parent[child], token[child] = node, c
                    if use_lm:
                        # _WordLM.extend: a word-start token completes the word in progress
                        score, part, hl = lm_score[node], partial[node], hist_len[node]
                        for i in range(hl):
                            hist[child, i] = hist[node, i]
                        if tok_starts[c] and part != 0:
                            word = char_word[part] if part > 0 else unk
                            gain, hl = _complete_word(
                                hist[node], hl, word, hist[child], n, lm_weight, word_bonus,
                                n_words, grams,
                            )  # fmt: skip
                            score = score + gain
                            part = 0
                        for i in range(tok_offsets[c], tok_offsets[c + 1]):
                            if part < 0:
                                break
                            part = _find(char_keys, char_child, part * 0x110000 + tok_codes[i])
                        lm_score[child], hist_len[child], partial[child] = score, hl, part
                cs, m = _slot(child, t, m, slot_of, slot_frame, nxt_node, nxt_b, nxt_nb)
                # after the same token, only a path through blank starts a new copy
                nxt_nb[cs] = _lse(nxt_nb[cs], (pb if c == last else total) + row[c])
        keys = np.empty(m, np.float64)
        for i in range(m):
            keys[i] = -_lse(nxt_b[i], nxt_nb[i])
            if use_lm:
                keys[i] = -(-keys[i] + lm_score[nxt_node[i]])
        # stable: ties keep insertion order, as heapq.nlargest / sorted(reverse=True) do
        order_ = np.argsort(keys, kind="mergesort")
        n_beam = min(beam, m)
        for i in range(n_beam):
            s = order_[i]
            beam_node[i], beam_pb[i], beam_pnb[i] = nxt_node[s], nxt_b[s], nxt_nb[s]

    best, best_score = 0, NEG_INF
    for bi in range(n_beam):
        node = beam_node[bi]
        score = _lse(beam_pb[bi], beam_pnb[bi])
        if use_lm:
            # _WordLM.final: complete the word in progress, then </s>
            lm_final, hl = lm_score[node], hist_len[node]
            for i in range(hl):
                ctx[i] = hist[node, i]
            part = partial[node]
            if part != 0:
                word = char_word[part] if part > 0 else unk
                gain, hl = _complete_word(
                    ctx, hl, word, ctx, n, lm_weight, word_bonus, n_words, grams
                )
                lm_final = lm_final + gain
            lp10 = _log10(ctx, hl, eos, n_words, grams)
            score = score + (lm_final + lm_weight * (lp10 * LN10))
        if score > best_score or bi == 0:
            best, best_score = node, score
    length = 0
    node = best
    while node > 0:
        length += 1
        node = parent[node]
    out = np.empty(length, np.int64)
    node = best
    while node > 0:
        length -= 1
        out[length] = token[node]
        node = parent[node]
    return out
