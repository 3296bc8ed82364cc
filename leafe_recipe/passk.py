"""Unbiased Pass@k (Chen et al., 2021): the chance that at least one of k samples,
drawn without replacement from n generated ones of which c are correct, is correct.

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

The product is evaluated as a difference of prefix sums of log1p(-k / i), so a whole
table of tasks (each with its own n) is one vectorised pass per k, stable for n in
the thousands where the binomials themselves overflow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ks_up_to(n: int) -> list[int]:
    """The k reported for n samples: 1, 2, 4, ... (powers of two) and n itself."""
    if n < 1:
        raise ValueError(f"need at least one sample per task, got n={n}")
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks if ks[-1] == n else ks + [n]


def pass_at_k(n: Sequence[int] | np.ndarray, c: Sequence[int] | np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Pass@k per task and k: an array of shape (len(n), len(ks)).

    Raises ValueError when any k exceeds a task's n (the estimator is undefined there,
    and silently clipping k would report a different quantity).
    """
    n = np.asarray(n, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    ks = [int(k) for k in ks]
    if n.shape != c.shape or n.ndim != 1:
        raise ValueError(f"n and c must be 1-d arrays of one length, got shapes {n.shape} and {c.shape}")
    if (c < 0).any() or (c > n).any():
        bad = int(np.flatnonzero((c < 0) | (c > n))[0])
        raise ValueError(f"task {bad}: c={c[bad]} correct samples is outside 0..n={n[bad]}")
    if not ks or min(ks) < 1:
        raise ValueError(f"k must be >= 1, got {ks}")
    if n.size and max(ks) > n.min():
        bad = int(np.argmin(n))
        raise ValueError(
            f"k={max(ks)} exceeds the n={n[bad]} samples of task {bad}: Pass@k is only defined for k <= n; "
            "generate more samples or ask for smaller k"
        )
    out = np.ones((n.size, len(ks)))
    top = int(n.max()) if n.size else 0
    i = np.arange(1, top + 1, dtype=np.float64)
    for j, k in enumerate(ks):
        # prefix[m] = sum_{i=k+1}^{m} log(1 - k/i); zero for m <= k.
        terms = np.log1p(-np.where(i > k, k / i, 0.0))
        prefix = np.concatenate([[0.0], np.cumsum(terms)])
        fail_possible = n - c >= k  # otherwise every k-subset holds a correct sample
        log_fail = prefix[n] - prefix[np.maximum(n - c, k)]
        out[:, j] = np.where(fail_possible, -np.expm1(log_fail), 1.0)
    return out


def mean_pass_at_k(n: Sequence[int] | np.ndarray, c: Sequence[int] | np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Pass@k averaged over tasks, keyed by k."""
    table = pass_at_k(n, c, ks)
    return {int(k): float(table[:, j].mean()) for j, k in enumerate(ks)}
