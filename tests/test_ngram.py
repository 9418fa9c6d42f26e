"""Kneser-Ney training, normalisation, ARPA reading and writing."""

import gzip
import itertools
import math
import random

import pytest

from scpc.errors import ScpcError
from scpc.eval.ngram import NgramLM, _estimate_discounts

LN10 = math.log(10)
TINY = [["a", "b"], ["a"]]


def tiny_bigram():
    return NgramLM.train(TINY, order=2, discounts=(0.5, 1.0, 1.5))


def test_kneser_ney_probabilities_of_a_tiny_corpus():
    # <s> a b </s> / <s> a </s>. Bigram counts: <s> a 2, a b 1, a </s> 1, b </s> 1.
    # Unigram continuation counts: a 1 (<s>), b 1 (a), </s> 2 (a, b); total 4; V = {a b </s> <unk>}
    # gamma() = (0.5 + 0.5 + 1.0) / 4 = 1/2, so p(a) = 0.5/4 + 0.5/4 = 0.25, p(b) = 0.25,
    # p(</s>) = 1/4 + 1/8 = 0.375, p(<unk>) = 0.125.
    lm = tiny_bigram()
    assert lm.order == 2
    assert math.exp(lm.score([], "a")) == pytest.approx(0.25)
    assert math.exp(lm.score([], "</s>")) == pytest.approx(0.375)
    assert math.exp(lm.score([], "<unk>")) == pytest.approx(0.125)
    # context a: a b 1, a </s> 1, total 2, gamma(a) = 2 * 0.5 / 2 = 0.5
    assert math.exp(lm.score(["a"], "b")) == pytest.approx(0.25 + 0.5 * 0.25)
    assert math.exp(lm.score(["a"], "</s>")) == pytest.approx(0.25 + 0.5 * 0.375)
    assert math.exp(lm.score(["a"], "a")) == pytest.approx(0.5 * 0.25)
    # context <s>: <s> a 2 (discount 1.0), gamma = 1.0 / 2
    assert math.exp(lm.score(["<s>"], "a")) == pytest.approx(0.5 + 0.5 * 0.25)
    assert math.exp(lm.score(["<s>"], "b")) == pytest.approx(0.5 * 0.25)
    # context b: b </s> 1, gamma = 0.5
    assert math.exp(lm.score(["b"], "</s>")) == pytest.approx(0.5 + 0.5 * 0.375)
    # only the last order-1 words count; unknown words are <unk>
    assert lm.score(["b", "b", "a"], "b") == lm.score(["a"], "b")
    assert lm.score(["a"], "zebra") == lm.score(["a"], "<unk>")
    assert lm.score(["zebra"], "a") == pytest.approx(math.log(0.25))


def test_sentence_logprob_and_perplexity():
    lm = tiny_bigram()
    ab = math.log(0.625 * 0.375 * 0.6875)  # a|<s>, b|a, </s>|b from above
    a = math.log(0.625 * 0.4375)
    assert lm.sentence_logprob(["a", "b"]) == pytest.approx(ab)
    assert lm.sentence_logprob(["a", "b"], eos=False) == pytest.approx(math.log(0.625 * 0.375))
    assert lm.perplexity(TINY) == pytest.approx(math.exp(-(ab + a) / 5))


def random_corpus(seed=0, n=300):
    rng = random.Random(seed)
    words = "the cat dog sat on a mat ran".split()
    return [[rng.choice(words) for _ in range(rng.randint(1, 8))] for _ in range(n)]


def assert_normalised(lm, histories):
    outcomes = sorted(lm.vocab - {"<s>"})
    for h in histories:
        total = sum(math.exp(lm.score(h, w)) for w in outcomes)
        assert total == pytest.approx(1.0, abs=1e-9), h


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_trained_model_is_a_distribution_for_every_history(order):
    lm = NgramLM.train(random_corpus(), order=order)
    words = sorted(lm.vocab - {"</s>"}) + ["zebra"]
    histories = [[]] + [list(h) for h in itertools.product(words, repeat=2)]
    histories += [["<s>", "the", "cat"], ["mat", "mat", "mat"]]
    assert_normalised(lm, histories)
    tiny = NgramLM.train(TINY, order=order)
    assert_normalised(tiny, [[], ["<s>"], ["a"], ["b"], ["<s>", "a"], ["a", "b"], ["x", "y"]])


def test_discounts_follow_count_of_counts():
    # n1..n4 = 10 5 3 2: Y = 10 / 20, D1 = 1 - 2Y 5/10, D2 = 2 - 3Y 3/5, D3 = 3 - 4Y 2/3
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4, 7]
    assert _estimate_discounts(counts) == pytest.approx((0.5, 1.1, 3 - 4 / 3))
    # no count of 3: undefined, so the fixed defaults
    assert _estimate_discounts([1, 1, 2, 4]) == (0.5, 1.0, 1.5)


def test_arpa_round_trip_keeps_scores(tmp_path):
    lm = NgramLM.train(random_corpus(1, 100), order=3)
    lm.write_arpa(tmp_path / "lm.arpa")
    back = NgramLM.read_arpa(tmp_path / "lm.arpa")
    assert back.order == 3 and back.vocab == lm.vocab
    words = sorted(lm.vocab) + ["zebra"]
    for h in itertools.product(words, repeat=2):
        for w in words:
            assert back.score(h, w) == pytest.approx(lm.score(h, w), abs=1e-4)
    back.write_arpa(tmp_path / "again.arpa")
    assert (tmp_path / "again.arpa").read_text() == (tmp_path / "lm.arpa").read_text()
    # atomic writes leave no temporary files behind
    assert {p.name for p in tmp_path.iterdir()} == {"lm.arpa", "again.arpa"}


def test_written_arpa_has_declared_counts(tmp_path):
    tiny_bigram().write_arpa(tmp_path / "lm.arpa")
    lines = (tmp_path / "lm.arpa").read_text().splitlines()
    assert lines[:3] == ["\\data\\", "ngram 1=5", "ngram 2=4"]
    assert "-99\t<s>\t-0.30103" in lines  # backoff log10(1/2)
    assert lines[-1] == "\\end\\"


ARPA = """\
\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.5
-0.5\ta\t-0.3
-0.7\t</s>

\\2-grams:
-0.2\t<s> a
-0.4\ta </s>

\\end\\
"""


def test_read_arpa_backs_off(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA)
    with gzip.open(tmp_path / "lm.arpa.gz", "wt") as f:
        f.write(ARPA)
    for name in ("lm.arpa", "lm.arpa.gz"):
        lm = NgramLM.read_arpa(tmp_path / name)
        assert lm.order == 2
        assert lm.score(["<s>"], "a") == pytest.approx(-0.2 * LN10)
        assert lm.score(["a"], "a") == pytest.approx((-0.3 - 0.5) * LN10)
        assert lm.score(["<s>"], "</s>") == pytest.approx((-0.5 - 0.7) * LN10)
        assert lm.score(["zebra"], "a") == pytest.approx(-0.5 * LN10)
        assert lm.score([], "zebra") == pytest.approx(-1.0 * LN10)
        assert lm.sentence_logprob(["a"]) == pytest.approx((-0.2 - 0.4) * LN10)


@pytest.mark.parametrize(
    "old, new, where",
    [
        ("-0.5\ta\t-0.3", "-0.5x\ta\t-0.3", "lm.arpa:8: not a number"),
        ("-0.2\t<s> a", "-0.2\t<s>", "lm.arpa:12: expected a log10 probability, 2 words"),
        ("ngram 2=2", "ngram 2=3", "lm.arpa:15: 2 2-grams but"),
        ("\\end\\\n", "", "lm.arpa:14: missing"),
        ("\\data\\", "data", "lm.arpa:15: no \\\\data"),
        ("\\2-grams:", "\\3-grams:", "lm.arpa:11: .*not declared"),
        ("ngram 2=2", "ngram 2=two", "lm.arpa:3: bad n-gram count"),
    ],
)
def test_malformed_arpa_names_file_and_line(tmp_path, old, new, where):
    (tmp_path / "lm.arpa").write_text(ARPA.replace(old, new))
    with pytest.raises(ScpcError, match=where):
        NgramLM.read_arpa(tmp_path / "lm.arpa")


def test_bad_training_input_is_an_error(tmp_path):
    with pytest.raises(ScpcError, match="order"):
        NgramLM.train(TINY, order=0)
    with pytest.raises(ScpcError, match="no training sentences"):
        NgramLM.train([], order=2)
    with pytest.raises(ScpcError, match="<s>"):
        NgramLM.train([["a", "<s>"]], order=2)
    with pytest.raises(ScpcError, match="no such|cannot read"):
        NgramLM.read_arpa(tmp_path / "absent.arpa")
