"""Judging a comparison (METHOD.md section 5b): paired bootstrap intervals over queries, the
verdict they give, and the trapezoid AUC.

A curve's AUC-mAP is the mean, over its queries, of each query's own AUC (the mean of that
query's AP over the curve's steps): resampling the queries with replacement resamples the
AUC. Every method of an experiment is resampled with the *same* queries (:func:`paired_bootstrap`),
so the interval of a difference A - B comes from the resamples of A and B themselves, and
two orders of one experiment, which query the same items, pair as well. A claim "A beats B"
holds when that interval lies above 0, fails when it lies below, and is a tie otherwise
(:func:`verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LEVEL",
    "RESAMPLES",
    "VERDICTS",
    "Bootstrap",
    "combine",
    "paired_bootstrap",
    "per_query_mean",
    "trapezoid_auc",
    "verdict",
]

RESAMPLES = 1000  # resamples of the queries per interval
LEVEL = 0.95  # the intervals' coverage (percentile method)
VERDICTS = ("holds", "fails", "tie")


def per_query_mean(per_step: np.ndarray) -> np.ndarray:
    """``(S + 1, Q)`` values of each query at each step -> ``(Q,)`` each query's mean over
    the steps: its own AUC (NaN stays NaN for a query left out of every step)."""
    return np.asarray(per_step, dtype=np.float64).mean(0)


def trapezoid_auc(values: np.ndarray) -> float:
    """The area under a curve of equally spaced points over t in [0, 1] by the trapezoid rule
    (the two ends weigh half): beside :func:`~backfill_lib.core.metrics.auc`, the mean of
    the points, which weighs every point alike."""
    v = np.asarray(values, dtype=np.float64)  # (S + 1,)
    return float((v.sum() - (v[0] + v[-1]) / 2) / (len(v) - 1))


@dataclass(frozen=True)
class Bootstrap:
    """Paired resampled means: ``means[key] (resamples,)``, the mean of ``key``'s per-query
    values over the same resampled queries for every key."""

    means: Mapping[str, np.ndarray]
    level: float = LEVEL

    def interval(
        self, key: str, minus: str | None = None, minus_from: Bootstrap | None = None
    ) -> tuple[float, float]:
        """The percentile interval of ``key``'s mean, or of ``key - minus`` (paired; ``minus``
        read from ``minus_from`` when given, a bootstrap drawn with the same resamples)."""
        other = self if minus_from is None else minus_from
        draws = self.means[key] - (other.means[minus] if minus is not None else 0.0)
        tail = 100 * (1 - self.level) / 2
        low, high = np.percentile(draws, [tail, 100 - tail])
        return float(low), float(high)


def paired_bootstrap(
    per_query: Mapping[str, np.ndarray],
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    chunk: int = 100,
) -> Bootstrap:
    """Resample the queries with replacement ``resamples`` times (seeded) and take the mean
    of every key's per-query values ``(Q,)`` over each resample, the same queries for every
    key. Queries that are NaN for some key (left out: no relevant item) are left out of all.
    Two calls with the same ``seed`` and the same number of counted queries draw the same
    resamples, so their means pair too."""
    if not per_query:
        raise ValueError("nothing to resample: give at least one per-query array")
    values = {key: np.asarray(v, dtype=np.float64) for key, v in per_query.items()}
    lengths = {len(v) for v in values.values()}
    if len(lengths) != 1:
        raise ValueError(f"every per-query array needs the same queries, got lengths {lengths}")
    counted = np.logical_and.reduce([np.isfinite(v) for v in values.values()])
    kept = {key: v[counted] for key, v in values.items()}
    n = int(counted.sum())
    if n < 2:
        raise ValueError(f"{n} counted queries: a bootstrap needs at least 2")
    rng = np.random.default_rng(seed)
    means = {key: np.empty(resamples) for key in values}
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        picked = rng.integers(0, n, size=(rows, n))  # (rows, Q): the queries of each resample
        for key, v in kept.items():
            means[key][start : start + rows] = v[picked].mean(1)
    return Bootstrap(means, level)


def verdict(interval: tuple[float, float]) -> str:
    """``holds`` when the interval of a difference lies above 0, ``fails`` below, else
    ``tie`` (the data cannot tell the two apart)."""
    low, high = interval
    return "holds" if low > 0 else "fails" if high < 0 else "tie"


def combine(verdicts: list[str]) -> str:
    """One verdict of several that must all hold (orders, seeds, methods): ``holds`` when all
    hold, ``fails`` when all fail, ``tie`` otherwise (they disagree, or a part is a tie)."""
    if not verdicts:
        raise ValueError("no verdict to combine")
    if all(v == "holds" for v in verdicts):
        return "holds"
    if all(v == "fails" for v in verdicts):
        return "fails"
    return "tie"
