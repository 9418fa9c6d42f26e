"""Edit distance, WER/CER, accuracy and EER on examples worked by hand."""

import random

import pytest

from scpc.errors import ScpcError
from scpc.eval.metrics import (
    accuracy,
    char_error_rate,
    edit_distance,
    edit_ops,
    equal_error_rate,
    error_rate,
    word_error_rate,
)


def test_edit_distance_of_textbook_pairs():
    # kitten -> sitten (k/s) -> sittin (e/i) -> sitting (+g)
    assert edit_distance("kitten", "sitting") == 3
    # flaw -> law (-f) -> lawn (+n)
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance("", "") == 0
    assert edit_distance(["a", "b"], ["a", "b"]) == 0
    assert edit_distance("sitting", "kitten") == 3


def test_edit_ops_counts_substitutions_deletions_insertions():
    assert edit_ops("kitten", "sitting") == (2, 0, 1)  # k/s, e/i, +g
    assert edit_ops("abc", "") == (0, 3, 0)
    assert edit_ops("", "ab") == (0, 0, 2)
    assert edit_ops("abc", "abd") == (1, 0, 0)
    # a b c d / a x c: b/x substituted, d deleted
    assert edit_ops("a b c d".split(), "a x c".split()) == (1, 1, 0)
    assert edit_ops("a b".split(), "x a b y".split()) == (0, 0, 2)


def test_edit_ops_add_up_to_the_edit_distance():
    rng = random.Random(0)
    for _ in range(200):
        ref = [rng.choice("abc") for _ in range(rng.randrange(7))]
        hyp = [rng.choice("abc") for _ in range(rng.randrange(7))]
        s, d, i = edit_ops(ref, hyp)
        assert s + d + i == edit_distance(ref, hyp)
        assert len(ref) - d + i == len(hyp)


def test_word_error_rate_pools_edits_over_utterances():
    # utt 1: one insertion ("down"); utt 2: one deletion ("the"); 6 reference words
    refs = ["the cat sat", "on the mat"]
    hyps = ["the cat sat down", "on  mat"]
    assert word_error_rate(refs, hyps) == pytest.approx(100 * 2 / 6)
    assert word_error_rate(["a b c d"], ["a x c"]) == pytest.approx(50.0)
    assert error_rate([[1, 2], [3]], [[1, 2], [3]]) == 0.0


def test_char_error_rate_counts_spaces_once_per_whitespace_run():
    # "ab  c" is read as "ab c" (4 characters); "abc" misses the space
    assert char_error_rate(["ab  c"], ["abc"]) == pytest.approx(25.0)
    assert char_error_rate([" ab\tc "], ["ab c"]) == 0.0
    # kitten/sitting: 3 edits over 6 characters
    assert char_error_rate(["kitten"], ["sitting"]) == pytest.approx(50.0)


def test_error_rate_refuses_mismatched_or_empty_references():
    with pytest.raises(ScpcError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ScpcError, match="empty"):
        word_error_rate(["", "  "], ["a", ""])


def test_accuracy_is_a_percentage():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == pytest.approx(75.0)
    assert accuracy(["x"], ["x"]) == 100.0
    with pytest.raises(ScpcError):
        accuracy([], [])
    with pytest.raises(ScpcError):
        accuracy([1, 2], [1])


def test_eer_of_separable_scores_is_zero_and_of_reversed_scores_is_hundred():
    scores = [0.9, 0.8, 0.3, 0.1]
    assert equal_error_rate(scores, [True, True, False, False]) == 0.0
    assert equal_error_rate(scores, [False, False, True, True]) == 100.0


def test_eer_interpolates_across_tied_scores():
    # targets 0.8, 0.5; non-targets 0.5, 0.5, 0.1. ROC points (FA, FR): (0, 1), after 0.8
    # (0, 1/2), after the tied 0.5s (2/3, 0). On the segment (2/3 s, 1/2 - s/2) FA = FR at
    # s = 3/7, so EER = 2/7.
    scores = [0.8, 0.5, 0.5, 0.5, 0.1]
    targets = [True, True, False, False, False]
    assert equal_error_rate(scores, targets) == pytest.approx(100 * 2 / 7)
    # the order of tied scores does not matter
    assert equal_error_rate(scores[::-1], targets[::-1]) == pytest.approx(100 * 2 / 7)
    # everything tied: one diagonal segment from (0, 1) to (1, 0)
    assert equal_error_rate([1.0] * 4, [True, False, False, True]) == pytest.approx(50.0)


def test_eer_between_operating_points_without_ties():
    # targets 0.9 0.6 0.4 0.2, non-targets 0.8 0.3 0.1: ROC (0,1) (0,3/4) (1/3,3/4) (1/3,1/2)
    # (1/3,1/4): FA - FR turns positive on the vertical segment at FA = 1/3
    scores = [0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1]
    targets = [True, False, True, True, False, True, False]
    assert equal_error_rate(scores, targets) == pytest.approx(100 / 3)
    # targets 0.9 0.3, non-targets 0.8 0.7 0.1: FA = FR = 1/2 on the segment (1/3,1/2)-(2/3,1/2)
    assert equal_error_rate(
        [0.9, 0.8, 0.7, 0.3, 0.1], [True, False, False, True, False]
    ) == pytest.approx(50.0)


def test_eer_needs_targets_and_non_targets():
    with pytest.raises(ScpcError, match="0 non-targets"):
        equal_error_rate([0.1, 0.2], [True, True])
    with pytest.raises(ScpcError, match="0 targets"):
        equal_error_rate([0.1, 0.2], [False, False])
