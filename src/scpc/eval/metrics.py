"""Error rates (edit distance, WER, CER), accuracy and equal error rate; all rates in percent."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from scpc.errors import ScpcError


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Levenshtein distance with unit costs for substitution, deletion and insertion."""
    if len(hyp) > len(ref):
        # the row is as long as the shorter sequence
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j - 1] + (r != h), prev[j] + 1, cur[j - 1] + 1))
        prev = cur
    return prev[-1]


def edit_ops(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of one minimal alignment of ``hyp`` to ``ref``.

    Among minimal alignments, the backtrace prefers a match or substitution, then a deletion,
    then an insertion, so the counts are deterministic.
    """
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        row, up, r = d[i], d[i - 1], ref[i - 1]
        for j in range(1, m + 1):
            row[j] = min(up[j - 1] + (r != hyp[j - 1]), up[j] + 1, row[j - 1] + 1)
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return subs, dels, ins


def error_rate(refs: Sequence[Sequence[Hashable]], hyps: Sequence[Sequence[Hashable]]) -> float:
    """100 * total edit distance / total reference length, over all pairs."""
    if len(refs) != len(hyps):
        raise ScpcError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ScpcError("the references are empty: error rate undefined")
    return 100.0 * sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total


def word_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate in percent; words are whitespace-separated."""
    return error_rate([r.split() for r in refs], [h.split() for h in hyps])


def _chars(text: str) -> str:
    return " ".join(text.split())


def char_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate in percent.

    Spaces count as characters (a missing word boundary is an error), but every run of
    whitespace becomes one space and leading/trailing whitespace is dropped first.
    """
    return error_rate([_chars(r) for r in refs], [_chars(h) for h in hyps])


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Percentage of positions where ``pred`` equals ``gold``."""
    if len(gold) != len(pred):
        raise ScpcError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ScpcError("no labels: accuracy undefined")
    return 100.0 * sum(g == p for g, p in zip(gold, pred)) / len(gold)


def equal_error_rate(scores: Sequence[float], targets: Sequence[bool]) -> float:
    """Equal error rate in percent; a higher score means "more likely a target".

    The ROC has one operating point per threshold between distinct score values (accept
    ``score >= threshold``), so tied scores move false acceptance and false rejection
    together. The EER is where the straight line between two consecutive points crosses
    false acceptance == false rejection.
    """
    if len(scores) != len(targets):
        raise ScpcError(f"{len(scores)} scores but {len(targets)} target labels")
    n_tar = sum(1 for t in targets if t)
    n_non = len(targets) - n_tar
    if n_tar == 0 or n_non == 0:
        raise ScpcError(
            f"equal error rate needs targets and non-targets ({n_tar} targets, {n_non} non-targets)"
        )
    pairs = sorted(zip(scores, targets), key=lambda p: p[0], reverse=True)
    fa, fr = 0.0, 1.0  # threshold above every score: nothing accepted
    acc_tar = acc_non = 0
    k = 0
    while k < len(pairs):
        s = pairs[k][0]
        while k < len(pairs) and pairs[k][0] == s:
            if pairs[k][1]:
                acc_tar += 1
            else:
                acc_non += 1
            k += 1
        new_fa, new_fr = acc_non / n_non, 1.0 - acc_tar / n_tar
        if new_fa >= new_fr:
            # fa - fr goes from < 0 to >= 0 on this segment
            d0, d1 = fa - fr, new_fa - new_fr
            alpha = -d0 / (d1 - d0)
            return 100.0 * (fa + alpha * (new_fa - fa))
        fa, fr = new_fa, new_fr
    raise AssertionError("unreachable: the last ROC point has fa = 1, fr = 0")
