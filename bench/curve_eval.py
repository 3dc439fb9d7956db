"""Curve evaluation speed and memory: the project's evaluator against two baselines.

N items (queries = gallery), d = 128, 21 fractions, mAP + CMC for ``drm`` (random unit
embeddings, 100 classes, so each query has about N/100 relevant items), measured side
by side in one run:

- naive: ``reference_curve`` re-sorts every query's merged ranking at every fraction;
- floor: compute both distance matrices and sort each row once (no metric at all);
- ours: ``evaluate_curve``.

Then the peak memory (max RSS) of ``evaluate_curve`` at N = 50,000 in a fresh process.

    python bench/curve_eval.py [--n 10000] [--memory-n 50000]

Last line: ``ratio <naive time / our time>``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from backfill_lib import distance_rank_merge, evaluate_curve, pairwise_distances, random_order
from backfill_lib.core.metrics import reference_curve


def problem(n: int, d: int = 128, classes: int = 100):
    gen = torch.Generator().manual_seed(0)
    old = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1)
    new = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1)
    labels = torch.randint(0, classes, (n,), generator=gen)
    return distance_rank_merge(old, old, new, new), labels, random_order(n, 0)


def floor(parts, chunk: int = 512) -> None:
    n = parts.gallery_size
    for start in range(0, n, chunk):
        q = slice(start, min(n, start + chunk))
        torch.sort(pairwise_distances(parts.query_old[q], parts.gallery_old), dim=1)
        torch.sort(pairwise_distances(parts.query_new[q], parts.gallery_new), dim=1)


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def memory_child(n: int) -> None:
    parts, labels, order = problem(n)
    evaluate_curve(parts, labels, order)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)  # KiB -> GiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--memory-n", type=int, default=50_000)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    parts, labels, order = problem(args.n)
    t_floor, _ = timed(floor, parts)
    t_ours, ours = timed(evaluate_curve, parts, labels, order)
    t_naive, naive = timed(reference_curve, parts, labels, order)
    assert np.allclose(ours.mAP, naive.mAP, atol=1e-9), "evaluators disagree"
    print(f"N={args.n} d=128 21 fractions, torch threads={torch.get_num_threads()}")
    print(f"floor (2 distance matrices + 1 sort per row): {t_floor:8.2f} s")
    print(
        f"ours  (evaluate_curve):                       {t_ours:8.2f} s  "
        f"({t_ours / t_floor:.2f}x floor)"
    )
    print(f"naive (reference_curve, re-sort per step):    {t_naive:8.2f} s")
    if args.memory_n:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(args.memory_n)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"peak memory of evaluate_curve at N={args.memory_n}: {float(out.stdout):.2f} GiB")
    print(f"ours / floor {t_ours / t_floor:.2f}")
    print(f"ratio {t_naive / t_ours:.2f}")


if __name__ == "__main__":
    main()
