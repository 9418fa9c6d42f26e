"""CTC greedy and prefix beam search, against hand-made logits and brute-force enumeration."""

import itertools
import math

import numpy as np
import pytest
import torch

from scpc.errors import ScpcError
from scpc.eval.ctc_decode import beam_search, greedy_decode, tokens_to_words
from scpc.eval.ngram import NgramLM


def logprobs_of(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


def peaked(labels, v, p=0.9):
    """Each frame puts ``p`` on its label and spreads the rest evenly."""
    out = np.full((len(labels), v), (1 - p) / (v - 1))
    out[np.arange(len(labels)), labels] = p
    return np.log(out)


def collapse(path, blank=0):
    return tuple(t for i, t in enumerate(path) if t != blank and (i == 0 or t != path[i - 1]))


def exact_label_probs(lp):
    """P(labelling) summed over every alignment, by enumeration of all V^T paths."""
    t_len, v = lp.shape
    probs = {}
    for path in itertools.product(range(v), repeat=t_len):
        p = math.exp(sum(lp[t, c] for t, c in enumerate(path)))
        label = collapse(path)
        probs[label] = probs.get(label, 0.0) + p
    return probs


def test_greedy_collapses_repeats_and_drops_blanks():
    lp = peaked([1, 1, 0, 1, 2, 2, 0, 0, 2], v=3)
    assert greedy_decode(lp) == [1, 1, 2, 2]
    assert greedy_decode(torch.from_numpy(lp).float()) == [1, 1, 2, 2]
    # with 2 as blank: 1 1 | 0 | 1 | 2 2 | 0 0 | 2 -> 1 0 1 0
    assert greedy_decode(lp, blank=2) == [1, 0, 1, 0]
    assert greedy_decode(np.zeros((0, 3))) == []


def test_beam_finds_the_labelling_that_many_alignments_favour():
    # blank 0.6 / a 0.4 on two frames: best path "blank blank" (0.36) gives "", but
    # "a" has a a + a _ + _ a = 0.16 + 0.24 + 0.24 = 0.64
    lp = logprobs_of([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(lp) == []
    assert beam_search(lp, beam=2) == [1]
    assert exact_label_probs(lp)[(1,)] == pytest.approx(0.64)


def test_repeated_token_needs_a_blank_between_copies():
    assert beam_search(peaked([1, 0, 1], v=3), beam=4) == [1, 1]
    assert beam_search(peaked([1, 1, 1], v=3), beam=4) == [1]
    assert beam_search(peaked([1, 2, 1], v=3), beam=4) == [1, 2, 1]


def test_beam_one_equals_greedy_on_peaked_frames():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 6, size=30)
        lp = peaked(labels, v=6, p=0.95)
        assert beam_search(lp, beam=1) == greedy_decode(lp)
        assert beam_search(lp, beam=5) == greedy_decode(lp)


@pytest.mark.parametrize("t_len, v", [(5, 3), (4, 4)])
def test_wide_beam_equals_exhaustive_search_over_labellings(t_len, v):
    rng = np.random.default_rng(t_len)
    for _ in range(20):
        x = torch.from_numpy(rng.normal(size=(t_len, v)) * 1.5)
        lp = torch.log_softmax(x, -1).numpy()
        probs = exact_label_probs(lp)
        best = max(probs, key=probs.get)
        # at most 121 labellings (length <= 4 over 3 labels): a beam of 128 prunes none
        assert tuple(beam_search(lp, beam=128)) == best


def test_tokens_to_words_for_pieces_and_delimited_characters():
    pieces = ["<b>", "▁the", "▁ca", "t", "s"]
    assert tokens_to_words([1, 2, 3, 4, 1], pieces) == ["the", "cats", "the"]
    chars = ["<b>", "|", "c", "a", "t", "d", "o", "g"]
    assert tokens_to_words([2, 3, 4, 1, 5, 6, 7], chars) == ["cat", "dog"]
    assert tokens_to_words([1, 2, 3, 4, 1, 1, 5, 6, 7, 1], chars) == ["cat", "dog"]
    spaced = ["<b>", " ", "a", "b"]
    assert tokens_to_words([2, 1, 3, 3], spaced) == ["a", "bb"]


CHARS = ["<b>", "|", "a", "b"]


def lm_preferring_b():
    return NgramLM.train([["b"], ["b"], ["b"], ["a"]], order=2)


def test_lm_breaks_a_near_tie_between_words():
    # one frame: "a" 0.46 against "b" 0.44; the LM has seen "b" three times as often
    lp = logprobs_of([[0.08, 0.02, 0.46, 0.44]])
    assert beam_search(lp, beam=4) == [2]
    lm = lm_preferring_b()
    assert beam_search(lp, beam=4, lm=lm, lm_weight=1.0, vocab=CHARS) == [3]
    # the same choice over several frames and a delimiter
    lp = logprobs_of([[0.08, 0.02, 0.46, 0.44], [0.9, 0.06, 0.02, 0.02], [0.1, 0.8, 0.05, 0.05]])
    assert beam_search(lp, beam=4) == [2, 1]
    assert beam_search(lp, beam=4, lm=lm, lm_weight=1.0, vocab=CHARS) == [3, 1]


def test_zero_lm_weight_and_bonus_decode_as_without_lm():
    rng = np.random.default_rng(3)
    lm = NgramLM.train([list(s) for s in ["ab", "ba", "aab", "b"]], order=3)
    for _ in range(10):
        lp = torch.log_softmax(torch.from_numpy(rng.normal(size=(15, 4)) * 2), -1)
        plain = beam_search(lp, beam=3)
        assert beam_search(lp, beam=3, lm=lm, vocab=CHARS) == plain


def test_word_bonus_favours_more_words():
    # frame 2 is "|" (0.45) or blank (0.55): "a|a" is two words, "aa" one
    e = 1e-4
    lp = logprobs_of([[0.05, 0.05, 0.9, e], [0.55, 0.45, e, e], [0.05, 0.05, 0.9, e]])
    lm = NgramLM.train([["a"], ["aa"], ["a", "a"]], order=1)
    assert beam_search(lp, beam=4) == [2, 2]
    assert beam_search(lp, beam=4, lm=lm, word_bonus=5.0, vocab=CHARS) == [2, 1, 2]


def test_beam_search_handles_long_inputs():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 100)) * 3
    x[:, 0] += 4
    lp = torch.log_softmax(torch.from_numpy(x), -1)
    out = beam_search(lp, beam=10)
    assert len(out) > 0 and all(0 < t < 100 for t in out)


def test_bad_arguments_are_errors():
    lp = peaked([1, 0], v=3)
    with pytest.raises(ScpcError, match="blank id 3"):
        greedy_decode(lp, blank=3)
    with pytest.raises(ScpcError, match="beam must be at least 1"):
        beam_search(lp, beam=0)
    with pytest.raises(ScpcError, match="vocab"):
        beam_search(lp, beam=2, lm=lm_preferring_b())
    with pytest.raises(ScpcError, match="2-D"):
        greedy_decode(lp[None])


def _random_case(rng, t_len, v, sharp):
    x = rng.normal(size=(t_len, v)) * sharp
    x[:, 0] += rng.uniform(0, 3)
    if rng.random() < 0.3:  # exact ties between classes and between prefixes
        x = np.round(x)
    return torch.log_softmax(torch.from_numpy(x), -1).numpy()


@pytest.mark.parametrize("order", [1, 2, 3])
def test_compiled_search_gives_the_reference_hypotheses(order):
    """The compiled search against the pure-Python one it replaced (tests/ctc_reference.py).

    Random frames (some with exact ties, which the reference orders as the compiled search
    does: tie_order), beams 1-12, top_k and prune windows, blank 0 or last,
    multi-character pieces, a delimiter token, an empty-text token, out-of-vocabulary words
    and an LM without ``<unk>``: the same labelling every time.
    """
    from ctc_reference import reference_beam_search

    rng = np.random.default_rng(order)
    pieces = ["<b>", "|", "▁a", "b", "▁ab", "ba", "▁c", "", "a"]
    corpus = [["ab", "a"], ["abba", "c"], ["a", "a", "ab"], ["c"], ["ab", "c", "ab"]]
    with_unk = NgramLM.train(corpus, order=order)
    no_unk = NgramLM(
        order,
        {g: p for g, p in with_unk._probs.items() if "<unk>" not in g},
        dict(with_unk._backoffs),
    )
    checked = 0
    for case in range(60):
        v = len(pieces)
        lp = _random_case(rng, int(rng.integers(1, 30)), v, rng.uniform(0.5, 4))
        blank = 0 if case % 2 else v - 1
        vocab = list(pieces) if blank == 0 else pieces[1:] + ["<b>"]
        kw = dict(
            beam=int(rng.integers(1, 13)),
            blank=blank,
            top_k=int(rng.integers(1, v)) if case % 3 else None,
            prune=float(rng.choice([2.0, 12.0, 50.0])),
        )
        assert beam_search(lp, **kw) == reference_beam_search(lp, **kw, tie_order=True)
        for lm in (with_unk, no_unk):
            lm_kw = dict(
                kw, lm=lm, vocab=vocab, lm_weight=rng.uniform(0, 2), word_bonus=rng.uniform(-1, 2)
            )
            assert beam_search(lp, **lm_kw) == reference_beam_search(lp, **lm_kw, tie_order=True)
            checked += 1
    assert checked == 120
