"""The statistics behind every interval this project reports.

Resampling units. Pass@k is computed per problem (the unbiased estimator, passk.py) and
averaged. With one seed, the bootstrap resamples problems with replacement. With several seeds
the same problems were evaluated under every seed, so the two sources of variation are
crossed, not nested: one resample draws seeds with replacement and, once, problems with
replacement, and applies that one problem draw to every drawn seed (a nested bootstrap, which
redraws problems within each seed, averages the problem noise over seeds and understates it).
A paired difference resamples the same units for both methods, so the pairing is kept.

Intervals are percentile intervals. Multiplicity: the primary comparisons an experiment
declares before it runs (`primary` in its config) are reported at the nominal level; every
other comparison of a report gets a Holm-adjusted bootstrap p-value and a Bonferroni
simultaneous interval (level 1 - alpha / m over its m comparisons), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leafe_recipe.passk import pass_at_k

BLOCK = 1000  # resamples per matrix product (bounds memory at BLOCK x problems)
UNITS = {
    1: "percentile bootstrap over problems",
    2: "percentile bootstrap over seeds and problems, crossed (one problem draw for every seed)",
}


class StatsError(ValueError):
    """The values cannot be resampled as asked; the message says why."""


def bootstrap_means(values: np.ndarray, resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """Means of `values` over `resamples` bootstrap resamples: an array (resamples x columns).

    `values` is (problems x columns): rows are drawn with replacement, all columns together.
    Or (seeds x problems x columns), the same problems under several seeds: seeds are drawn with
    replacement and problems are drawn once per resample, the same draw for every seed (crossed).
    With one seed it is the first case."""
    values = np.asarray(values, dtype=np.float64)
    values = values[None] if values.ndim == 2 else values
    if values.ndim != 3 or values.shape[0] == 0 or values.shape[1] == 0:
        raise StatsError(f"need a non-empty (problems x ks) or (seeds x problems x ks) array, got shape {values.shape}")
    if resamples < 1:
        raise StatsError(f"resamples must be >= 1, got {resamples}")
    s, p, _ = values.shape
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, values.shape[2]))
    for start in range(0, resamples, BLOCK):
        size = min(BLOCK, resamples - start)
        problems = rng.multinomial(p, np.full(p, 1.0 / p), size=size)  # how often each problem is drawn
        if s == 1:
            out[start : start + size] = problems @ values[0] / p
            continue
        seeds = rng.multinomial(s, np.full(s, 1.0 / s), size=size)
        per_seed = np.einsum("rp,spc->rsc", problems, values) / p  # one problem draw, applied to every seed
        out[start : start + size] = np.einsum("rs,rsc->rc", seeds, per_seed) / s
    return out


def interval(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap means (per column)."""
    if not 0 < level < 1:
        raise StatsError(f"the confidence level must be in (0, 1), got {level}")
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return low, high


def p_value(boot: np.ndarray) -> np.ndarray:
    """Two-sided bootstrap p-value of "the mean difference is 0" (per column): twice the share
    of resampled means on the far side of 0, at most 1."""
    return np.minimum(1.0, 2 * np.minimum((boot <= 0).mean(axis=0), (boot >= 0).mean(axis=0)))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (strong control of the family-wise error rate)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def passk_matrix(by_seed: dict[int, Any], ks: list[int], problems: list[str]) -> np.ndarray:
    """(seeds x problems x ks) unbiased Pass@k per problem from per-sample correctness
    (`.correct[problem]` lists), seeds in increasing order."""
    return np.stack([
        pass_at_k([len(s.correct[p]) for p in problems], [sum(s.correct[p]) for p in problems], ks)
        for _, s in sorted(by_seed.items())
    ])  # fmt: skip


@dataclass
class Estimate:
    """Pass@k for k = ks of one row (means over problems and seeds) with its CI."""

    ks: list[int]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: list[int]
    problems: int
    n: int  # samples per problem (the smallest)
    per_seed: np.ndarray  # (seeds x ks) means


def common_problems(*runs: Any) -> list[str]:
    return sorted(set.intersection(*(set(r.correct) for r in runs)))


def estimate(by_seed: dict[int, Any], resamples: int, seed: int, level: float) -> Estimate:
    problems = common_problems(*by_seed.values())
    if not problems:
        raise StatsError("the seeds of one row share no problem: they were evaluated on different tasks")
    n = min(len(s.correct[p]) for s in by_seed.values() for p in problems)
    ks = list(range(1, n + 1))
    values = passk_matrix(by_seed, ks, problems)
    low, high = interval(bootstrap_means(values, resamples, seed), level)
    return Estimate(ks, values.mean(axis=(0, 1)), low, high, sorted(by_seed), len(problems), n, values.mean(axis=1))


def paired(a: dict[int, Any], b: dict[int, Any], resamples: int, seed: int, level: float, ks: list[int] | None = None) -> dict[str, Any] | None:
    """A - B at `ks` (default: 1 and the largest k both have) on the seeds and problems they share:
    the mean difference, its bootstrap CI and p-value (crossed over seeds and problems where there
    are several seeds), and the per-seed means."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    sa, sb = {s: a[s] for s in seeds}, {s: b[s] for s in seeds}
    problems = common_problems(*sa.values(), *sb.values())
    if not problems:
        return None
    n = min(len(x.correct[p]) for x in [*sa.values(), *sb.values()] for p in problems)
    ks = sorted({1, n}) if ks is None else [k for k in ks if k <= n]
    diff = passk_matrix(sa, ks, problems) - passk_matrix(sb, ks, problems)
    boot = bootstrap_means(diff, resamples, seed)
    lo, hi = interval(boot, level)
    return {"ks": ks, "seeds": seeds, "problems": len(problems), "diff": diff.mean(axis=(0, 1)).tolist(),
            "ci": [lo.tolist(), hi.tolist()], "p": p_value(boot).tolist(), "boot": boot,
            "unit": UNITS[min(len(seeds), 2)], "per_seed": diff.mean(axis=1).tolist()}  # fmt: skip


def solved_within(attempts: list[list[bool]], ks: list[int]) -> np.ndarray:
    """(tasks x ks): 1 where one of a task's first k attempts solved it."""
    return np.array([[float(any(a[:k])) for k in ks] for a in attempts])
