"""DTW of many item pairs on one frame-distance matrix, compiled (numba), for ABX on the CPU.

The same recursion as :func:`scpc.eval.abx.dtw` (the batched anti-diagonal version used on a
GPU): steps (1, 0), (0, 1), (1, 1); among equal costs the diagonal predecessor wins, then
(i, j-1), then (i-1, j); the cost of the cheapest path divided by its length, in float32. Here
each pair reads its block of one shared distance matrix, so no pair is padded and no distance
is computed twice.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def dtw_pairs(dist, row, n, col, m, out):
    """out[p] = DTW of ``dist[row[p]:row[p] + n[p], col[p]:col[p] + m[p]]`` (float32)."""
    inf = np.float32(np.inf)
    for p in prange(len(row)):
        r0, c0, rows, cols = row[p], col[p], n[p], m[p]
        # one row of costs and path lengths at a time: prev (i - 1) and cur (i)
        prev_c = np.full(cols, inf, np.float32)
        prev_s = np.zeros(cols, np.float32)
        cur_c = np.empty(cols, np.float32)
        cur_s = np.empty(cols, np.float32)
        for i in range(rows):
            for j in range(cols):
                here = dist[r0 + i, c0 + j]
                if i == 0 and j == 0:
                    cur_c[0], cur_s[0] = here, np.float32(1)
                    continue
                up, up_s = prev_c[j], prev_s[j]
                if j > 0:
                    left, left_s = cur_c[j - 1], cur_s[j - 1]
                    diag, diag_s = prev_c[j - 1], prev_s[j - 1]
                else:
                    left, left_s, diag, diag_s = inf, np.float32(0), inf, np.float32(0)
                if diag <= left and diag <= up:
                    best, best_s = diag, diag_s
                elif left <= up:
                    best, best_s = left, left_s
                else:
                    best, best_s = up, up_s
                cur_c[j] = here + best
                cur_s[j] = best_s + np.float32(1)
            prev_c, cur_c = cur_c, prev_c
            prev_s, cur_s = cur_s, prev_s
        out[p] = prev_c[cols - 1] / prev_s[cols - 1]
