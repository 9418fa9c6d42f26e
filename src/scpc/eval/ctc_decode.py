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

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from scpc.errors import ScpcError

if TYPE_CHECKING:
    from scpc.eval.ngram import NgramLM

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
    ``beam``; ties to the lower id) that lie within ``prune`` nats of its most probable class,
    most probable first; blank, and the repetition of each prefix's last token, are always
    tried. The LM history starts at ``<s>``. Ties between prefixes go to the one found first.
    The search runs compiled (:mod:`scpc.eval.ctc_beam_kernel`; the first call in a fresh
    install compiles it, about 20 s, then it is loaded from numba's disk cache).
    """
    from scpc.eval.ctc_beam_kernel import beam_search_kernel
    from scpc.eval.lm_arrays import NO_LM, NO_TOKENS, build_lm_arrays, token_arrays

    a = _as_array(logprobs, 2)
    t_len, v = a.shape
    _check_blank(blank, v)
    if beam < 1:
        raise ScpcError(f"beam must be at least 1, not {beam}")
    if lm is not None:
        if vocab is None:
            raise ScpcError("beam search with an LM needs the token strings (vocab)")
        if len(vocab) != v:
            raise ScpcError(f"vocab has {len(vocab)} tokens but the output has {v} classes")
        arrays = build_lm_arrays(lm)
        tokens = token_arrays(vocab, word_start or default_word_start, _MARKS)
    else:
        arrays, tokens = NO_LM, NO_TOKENS
    out = beam_search_kernel(
        np.ascontiguousarray(a),
        int(top_k or beam),
        int(beam),
        int(blank),
        float(prune),
        lm is not None,
        float(lm_weight),
        float(word_bonus),
        arrays.order,
        arrays.n_words,
        arrays.unk,
        arrays.bos,
        arrays.eos,
        arrays.gram_keys,
        arrays.gram_child,
        arrays.gram_prob,
        arrays.has_prob,
        arrays.gram_backoff,
        arrays.char_keys,
        arrays.char_child,
        arrays.char_word,
        tokens.starts,
        tokens.text_offsets,
        tokens.text_codes,
    )
    return out.tolist()
