"""Word n-gram language model: interpolated modified Kneser-Ney training and ARPA files.

The model is held as an ARPA backoff model (log10 probability and backoff weight per n-gram),
so a trained model, the ARPA file it writes and the model read back score identically.
Sentences are padded with one ``<s>`` and one ``</s>``; a word outside the vocabulary is scored
as ``<unk>``.
"""

from __future__ import annotations

import gzip
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from scpc.errors import ScpcError
from scpc.io import atomic_write

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LN10 = math.log(10.0)
# ARPA's "probability zero", as written for <s> (never predicted)
LOG10_ZERO = -99.0
# Chen & Goodman's fixed discounts, used where count-of-counts cannot estimate them
DEFAULT_DISCOUNTS = (0.5, 1.0, 1.5)
_CACHE_LIMIT = 1_000_000


class NgramLM:
    """A backoff n-gram model; :meth:`score` gives natural-log probabilities."""

    def __init__(
        self,
        order: int,
        probs: dict[tuple[str, ...], float],
        backoffs: dict[tuple[str, ...], float],
    ) -> None:
        """``probs``: n-gram -> log10 P(last word | the others); ``backoffs``: n-gram -> log10."""
        self.order = order
        self._probs = probs
        self._backoffs = backoffs
        self.vocab = frozenset(g[0] for g in probs if len(g) == 1)
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    # ---------------------------------------------------------------- training

    @classmethod
    def train(
        cls,
        sentences: Iterable[Sequence[str]],
        order: int,
        discounts: tuple[float, float, float] | None = None,
    ) -> NgramLM:
        """Interpolated modified Kneser-Ney (Chen & Goodman) of the given order.

        Three discounts per order (for counts 1, 2 and 3+) are estimated from count-of-counts,
        or taken from ``discounts``; an order whose estimate is undefined or out of range
        (tiny corpora) uses :data:`DEFAULT_DISCOUNTS`. Lower orders use continuation counts,
        except n-grams starting with ``<s>``, which keep their counts (as KenLM does). The
        unigram distribution is interpolated with a uniform one over the vocabulary, ``</s>``
        and ``<unk>``.
        """
        if order < 1:
            raise ScpcError(f"n-gram order must be at least 1, not {order}")
        if discounts is not None and (
            len(discounts) != 3 or not all(0 < d <= i + 1 for i, d in enumerate(discounts))
        ):
            raise ScpcError(f"discounts {discounts} outside (0, 1], (0, 2], (0, 3]")
        raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[k]: k-gram counts
        n_sent = 0
        for sent in sentences:
            words = list(sent)
            if BOS in words or EOS in words:
                raise ScpcError(f"a training sentence contains {BOS} or {EOS}: {' '.join(words)}")
            toks = [BOS, *words, EOS]
            for i in range(1, len(toks)):
                for k in range(1, min(order, i + 1) + 1):
                    raw[k][tuple(toks[i - k + 1 : i + 1])] += 1
            n_sent += 1
        if n_sent == 0:
            raise ScpcError("no training sentences for the n-gram model")

        # adjusted counts: continuation counts below the top order
        adj: list[dict[tuple[str, ...], int]] = [{} for _ in range(order + 1)]
        adj[order] = dict(raw[order])
        for k in range(1, order):
            cont: Counter = Counter(g[1:] for g in raw[k + 1])
            adj[k] = {g: (c if g[0] == BOS else cont[g]) for g, c in raw[k].items()}

        vocab = {g[0] for g in raw[1]} | {UNK, EOS}
        probs: dict[tuple[str, ...], float] = {}
        backoffs: dict[tuple[str, ...], float] = {}
        lower: dict[tuple[str, ...], float] = {}  # interpolated P of order k-1, linear
        for k in range(1, order + 1):
            d = discounts if discounts is not None else _estimate_discounts(adj[k].values())
            by_ctx: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
            for g, c in adj[k].items():
                by_ctx[g[:-1]].append((g[-1], c))
            current: dict[tuple[str, ...], float] = {}
            for ctx, items in by_ctx.items():
                total = sum(c for _, c in items)
                gamma = sum(d[min(c, 3) - 1] for _, c in items) / total
                for w, c in items:
                    p_low = lower[ctx[1:] + (w,)] if k > 1 else 0.0
                    current[ctx + (w,)] = (c - d[min(c, 3) - 1]) / total + gamma * p_low
                if k == 1:
                    for w in vocab:
                        current[(w,)] = current.get((w,), 0.0) + gamma / len(vocab)
                else:
                    backoffs[ctx] = math.log10(gamma)
            probs.update({g: math.log10(p) for g, p in current.items()})
            lower = current
        probs[(BOS,)] = LOG10_ZERO
        return cls(order, probs, backoffs)

    # ---------------------------------------------------------------- scoring

    def _log10(self, ctx: tuple[str, ...], word: str) -> float:
        total = 0.0
        for start in range(len(ctx) + 1):
            h = ctx[start:]
            p = self._probs.get(h + (word,))
            if p is not None:
                return total + p
            total += self._backoffs.get(h, 0.0)
        return total + LOG10_ZERO  # no <unk> in this model

    def _map(self, word: str) -> str:
        return word if word in self.vocab else UNK

    def score(self, history: Sequence[str], word: str) -> float:
        """Natural-log P(word | the last order-1 words of ``history``).

        Include ``<s>`` in ``history`` to condition on the sentence start. A word that the
        model lacks is scored as ``<unk>`` (as log10 -99 if it has no ``<unk>`` either).
        """
        n = self.order - 1
        ctx = tuple(self._map(w) for w in history[len(history) - n :]) if n else ()
        key = (ctx, self._map(word))
        s = self._cache.get(key)
        if s is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            s = self._cache[key] = self._log10(*key) * LN10
        return s

    def sentence_logprob(self, words: Sequence[str], eos: bool = True) -> float:
        """Natural-log probability of ``words`` after ``<s>`` (and of ``</s>`` after them)."""
        hist = [BOS, *words]
        total = sum(self.score(hist[:i], hist[i]) for i in range(1, len(hist)))
        if eos:
            total += self.score(hist, EOS)
        return total

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """exp of the mean negative log-probability per word, ``</s>`` counted as a word."""
        total, n = 0.0, 0
        for sent in sentences:
            total += self.sentence_logprob(sent)
            n += len(sent) + 1
        if n == 0:
            raise ScpcError("no sentences: perplexity undefined")
        return math.exp(-total / n)

    # ---------------------------------------------------------------- ARPA

    def write_arpa(self, path: str | os.PathLike) -> None:
        """Write an ARPA file atomically (log10 values, 7 significant digits)."""
        by_order: list[list[tuple[str, ...]]] = [[] for _ in range(self.order + 1)]
        for g in self._probs:
            by_order[len(g)].append(g)
        with atomic_write(path) as f:
            f.write("\\data\\\n")
            for k in range(1, self.order + 1):
                f.write(f"ngram {k}={len(by_order[k])}\n")
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                for g in sorted(by_order[k]):
                    line = f"{self._probs[g]:.7g}\t{' '.join(g)}"
                    if g in self._backoffs:
                        line += f"\t{self._backoffs[g]:.7g}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")

    @classmethod
    def read_arpa(cls, path: str | os.PathLike) -> NgramLM:
        """Read an ARPA file (gzip if the name ends in .gz), e.g. KenLM's lmplz output."""
        opener = gzip.open if str(path).endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as f:
                return _parse_arpa(f, str(path))
        except OSError as e:
            raise ScpcError(f"{path}: cannot read ARPA file ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise ScpcError(f"{path}: not UTF-8 text") from None


def _estimate_discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    n = Counter(min(c, 4) for c in counts)
    if not all(n[i] for i in (1, 2, 3, 4)):
        return DEFAULT_DISCOUNTS
    y = n[1] / (n[1] + 2 * n[2])
    d = (1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3])
    if not all(0 < d[i] < i + 1 for i in range(3)):
        return DEFAULT_DISCOUNTS
    return d


def _parse_arpa(lines: Iterable[str], name: str) -> NgramLM:
    declared: dict[int, int] = {}
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    found: Counter = Counter()
    state = "preamble"  # preamble -> data -> (k-grams)* -> end
    k = 0
    lineno = 0

    def fail(problem: str, at: int | None = None) -> ScpcError:
        return ScpcError(f"{name}:{lineno if at is None else at}: {problem}")

    def check_count(at: int) -> None:
        if state == "grams" and found[k] != declared[k]:
            raise fail(f"{found[k]} {k}-grams but \\data\\ declares {declared[k]}", at)

    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if state == "preamble":
            if line == "\\data\\":
                state = "data"
            continue
        if not line:
            continue
        if line == "\\end\\":
            if state == "data":
                raise fail("\\end\\ before any n-gram section")
            check_count(lineno)
            missing = sorted(set(declared) - set(found))
            if missing:
                raise fail(f"no \\{missing[0]}-grams: section")
            return NgramLM(max(declared), probs, backoffs)
        if line.startswith("\\"):
            check_count(lineno)
            if not (line.endswith("-grams:") and line[1:-7].isdigit()):
                raise fail(f"unexpected section header {line!r}")
            k = int(line[1:-7])
            if k not in declared:
                raise fail(f"\\{k}-grams: section not declared in \\data\\")
            if k in found:
                raise fail(f"second \\{k}-grams: section")
            found[k] = 0
            state = "grams"
            continue
        if state == "data":
            key, _, value = line.partition("=")
            fields = key.split()
            if len(fields) != 2 or fields[0] != "ngram" or not fields[1].isdigit():
                raise fail(f"expected 'ngram N=COUNT' in \\data\\, got {line!r}")
            if not value.strip().isdigit():
                raise fail(f"bad n-gram count {value.strip()!r}")
            declared[int(fields[1])] = int(value)
            continue
        fields = line.split()
        if len(fields) not in (k + 1, k + 2):
            raise fail(f"expected a log10 probability, {k} words and an optional backoff")
        try:
            p = float(fields[0])
            bo = float(fields[k + 1]) if len(fields) == k + 2 else None
        except ValueError:
            raise fail("not a number where a log10 probability or backoff belongs") from None
        if p > 1e-6 or math.isnan(p) or (bo is not None and math.isnan(bo)):
            raise fail(f"log10 probability {fields[0]} is not <= 0")
        gram = tuple(fields[1 : k + 1])
        probs[gram] = p
        if bo is not None:
            backoffs[gram] = bo
        found[k] += 1
    if state == "preamble":
        raise fail("no \\data\\ header", at=lineno)
    raise fail("missing \\end\\", at=lineno)
