"""Cost of the paired bootstrap intervals of ``results.json`` on 10,000 queries, against
``scipy.stats.bootstrap`` (paired, percentile), side by side.

The experiment's report draws one paired bootstrap per order for every method and metric
(10 methods x 3 metrics: AUC-mAP, AUC-top1, final mAP) and reads every interval, and the
difference of every two methods, from it. scipy's bootstrap computes one interval per call:
here it computes the one difference ``rt+mc - drm`` (the two intervals are also compared:
the same method, other random resamples).

    python bench/bootstrap.py [--queries 10000] [--resamples 1000]

Last line: ``ratio <this library's time for every interval / scipy's for one>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from backfill_lib.core.statistics import paired_bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base = rng.beta(2, 3, args.queries)  # per-query AUCs of a made-up drm
    per_query = {
        f"method{i}|{metric}": np.clip(base + rng.normal(0.01 * i, 0.05, args.queries), 0, 1)
        for i in range(10)
        for metric in ("auc_mAP", "auc_top1", "final_mAP")
    }
    start = time.perf_counter()
    boot = paired_bootstrap(per_query, resamples=args.resamples)
    intervals = [boot.interval(key) for key in per_query]
    pairs = [
        boot.interval(f"method{i}|auc_mAP", f"method{j}|auc_mAP")
        for i in range(10)
        for j in range(i)
    ]
    ours = time.perf_counter() - start
    a, b = per_query["method9|auc_mAP"], per_query["method0|auc_mAP"]
    start = time.perf_counter()
    scipy = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=args.resamples,
        method="percentile",
        random_state=np.random.default_rng(1),
    ).confidence_interval
    theirs = time.perf_counter() - start
    low, high = boot.interval("method9|auc_mAP", "method0|auc_mAP")
    print(f"{args.queries:,} queries, {args.resamples:,} resamples")
    print(
        f"this library: {len(intervals)} intervals and {len(pairs)} paired differences in "
        f"{ours:.2f} s; rt+mc - drm style difference [{100 * low:.2f}, {100 * high:.2f}] points"
    )
    print(
        f"scipy.stats.bootstrap: one paired difference in {theirs:.2f} s: "
        f"[{100 * scipy.low:.2f}, {100 * scipy.high:.2f}] points"
    )
    print(f"ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
