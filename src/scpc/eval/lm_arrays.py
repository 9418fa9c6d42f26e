"""A word n-gram model and a token vocabulary as flat arrays, for the compiled beam search.

Every lookup the beam search makes (the LM word a token sequence spells, the backoff scoring of
that word after its history) becomes a binary search over sorted int64 keys, so the compiled
loop never calls back into Python. The arrays reproduce :meth:`NgramLM.score` and
``_WordLM`` of :mod:`scpc.eval.ctc_decode` exactly (same values, same order of additions):
tests compare the hypotheses of both.

- Words: every word of the model's n-grams, plus ``<unk>``, gets an id (0..n_words-1).
- n-grams: a trie, node 0 the empty history; the child of node ``p`` by word ``w`` has key
  ``p * n_words + w`` in ``gram_keys`` (sorted; the node is ``gram_child[i]``). A node's log10
  probability is ``gram_prob`` (``has_prob`` false where only longer n-grams pass through it)
  and its log10 backoff ``gram_backoff`` (0.0 when absent, as ARPA files mean).
- Spelling: a trie over the characters of the model's vocabulary (its unigrams); the child of
  node ``p`` by code point ``c`` has key ``p * 0x110000 + c`` in ``char_keys``; ``char_word``
  is the word id a node spells (``<unk>``'s id where it spells no vocabulary word).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from scpc.eval.ngram import BOS, EOS, UNK, NgramLM

CODE_POINTS = 0x110000


@dataclass(frozen=True)
class LMArrays:
    order: int
    n_words: int
    unk: int
    bos: int  # the id <s> maps to (``unk`` where the model lacks <s>)
    eos: int
    gram_keys: np.ndarray
    gram_child: np.ndarray
    gram_prob: np.ndarray
    has_prob: np.ndarray
    gram_backoff: np.ndarray
    char_keys: np.ndarray
    char_child: np.ndarray
    char_word: np.ndarray


def _sorted(keys: list[int], values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(keys, dtype=np.int64)
    v = np.asarray(values, dtype=np.int64)
    order = np.argsort(k, kind="stable")
    return k[order], v[order]


def build_lm_arrays(lm: NgramLM) -> LMArrays:
    """The arrays of ``lm`` (built once per model object: cached on it)."""
    cached = getattr(lm, "_beam_arrays", None)
    if cached is not None:
        return cached
    probs, backoffs = lm._probs, lm._backoffs
    ids: dict[str, int] = {}
    for gram in (*probs, *backoffs):
        for w in gram:
            if w not in ids:
                ids[w] = len(ids)
    if UNK not in ids:
        ids[UNK] = len(ids)
    n_words = len(ids)
    unk = ids[UNK]

    node_of: dict[tuple[str, ...], int] = {(): 0}
    keys: list[int] = []
    children: list[int] = []

    def node(gram: tuple[str, ...]) -> int:
        n = node_of.get(gram)
        if n is None:
            parent = node(gram[:-1])
            n = node_of[gram] = len(node_of)
            keys.append(parent * n_words + ids[gram[-1]])
            children.append(n)
        return n

    for gram in sorted({*probs, *backoffs}, key=len):
        node(gram)
    gram_prob = np.zeros(len(node_of), dtype=np.float64)
    has_prob = np.zeros(len(node_of), dtype=np.bool_)
    gram_backoff = np.zeros(len(node_of), dtype=np.float64)
    for gram, p in probs.items():
        gram_prob[node_of[gram]] = p
        has_prob[node_of[gram]] = True
    for gram, b in backoffs.items():
        gram_backoff[node_of[gram]] = b
    gram_keys, gram_child = _sorted(keys, children)

    char_keys_l: list[int] = []
    char_child_l: list[int] = []
    char_word_l: list[int] = [unk]
    trie: dict[tuple[int, int], int] = {}
    for word in lm.vocab:
        at = 0
        for ch in word:
            nxt = trie.get((at, ord(ch)))
            if nxt is None:
                nxt = trie[(at, ord(ch))] = len(char_word_l)
                char_keys_l.append(at * CODE_POINTS + ord(ch))
                char_child_l.append(nxt)
                char_word_l.append(unk)
            at = nxt
        if at:  # the empty word spells nothing: no token sequence completes it
            char_word_l[at] = ids[word]
    char_keys, char_child = _sorted(char_keys_l, char_child_l)

    def mapped(word: str) -> int:
        return ids[word] if word in lm.vocab else unk

    arrays = LMArrays(
        order=lm.order,
        n_words=n_words,
        unk=unk,
        bos=mapped(BOS),
        eos=mapped(EOS),
        gram_keys=gram_keys,
        gram_child=gram_child,
        gram_prob=gram_prob,
        has_prob=has_prob,
        gram_backoff=gram_backoff,
        char_keys=char_keys,
        char_child=char_child,
        char_word=np.asarray(char_word_l, dtype=np.int64),
    )
    lm._beam_arrays = arrays
    return arrays


@dataclass(frozen=True)
class TokenArrays:
    """Per token: whether it starts a word, and its text's code points (ragged)."""

    starts: np.ndarray
    text_offsets: np.ndarray
    text_codes: np.ndarray


def build_token_arrays(texts: Sequence[str], starts: Sequence[bool]) -> TokenArrays:
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in texts])
    codes = np.fromiter((ord(ch) for t in texts for ch in t), dtype=np.int64, count=offsets[-1])
    return TokenArrays(np.asarray(starts, dtype=np.bool_), offsets, codes)


_TOKEN_CACHE: dict[tuple[tuple[str, ...], Callable[[str], bool]], TokenArrays] = {}


def token_arrays(
    vocab: Sequence[str], word_start: Callable[[str], bool], marks: dict[int, None]
) -> TokenArrays:
    """The token arrays of ``vocab``, cached: a decoding run asks for them every utterance."""
    key = (tuple(vocab), word_start)
    got = _TOKEN_CACHE.get(key)
    if got is None:
        if len(_TOKEN_CACHE) > 8:
            _TOKEN_CACHE.clear()
        got = _TOKEN_CACHE[key] = build_token_arrays(
            [s.translate(marks) for s in vocab], [word_start(s) for s in vocab]
        )
    return got


def _empty(dtype) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


# what the compiled search gets without an LM (it never reads them then)
NO_LM = LMArrays(
    order=1,
    n_words=1,
    unk=0,
    bos=0,
    eos=0,
    gram_keys=_empty(np.int64),
    gram_child=_empty(np.int64),
    gram_prob=_empty(np.float64),
    has_prob=_empty(np.bool_),
    gram_backoff=np.zeros(1, dtype=np.float64),
    char_keys=_empty(np.int64),
    char_child=_empty(np.int64),
    char_word=np.zeros(1, dtype=np.int64),
)
NO_TOKENS = TokenArrays(_empty(np.bool_), np.zeros(1, dtype=np.int64), _empty(np.int64))
