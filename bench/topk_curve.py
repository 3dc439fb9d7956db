"""Top-k backfilling curves at scale: ``topk_curve`` against its two baselines.

1. At ``--check-n`` items (default 50,000; queries = gallery): ``topk_curve``'s mAP@k and
   recall@k against the full-ranking evaluator's (``evaluate_curve(..., map_at=(k,))``),
   which must agree exactly, and the time of each.
2. At ``--n`` items (default 1,000,000) and ``--queries`` queries (10,000): the 21-point
   ``rt`` curve by ``topk_curve``, its time and the process's peak memory so far, then the
   same curve the plain way, 21 x 2 independent faiss searches (at every fraction, an exact
   index over each part's current items, searched for k + 1 and merged), side by side.
   Goal: < 10 min and < 8 GB.

Embeddings come from :class:`backfill_lib.simulate.Simulation` (1,000 items per class, half
the classes seen by the old model, d = 128), psi is the least-squares linear map from the
new space to the old on 20,000 training items (an evaluator benchmark: any psi will do).

    python bench/topk_curve.py [--n 1000000] [--queries 10000] [--check-n 50000]

Last line: ``ratio <plain 21 x 2 searches time / topk_curve time>`` at ``--n``.
"""

from __future__ import annotations

import argparse
import resource
import time

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from backfill_lib import (
    Simulation,
    evaluate_curve,
    random_order,
    topk_curve,
    transformed_query_merge,
)
from backfill_lib.core.orders import backfill_steps


def simulated_rt(n: int, dim: int, queries: np.ndarray, seed: int = 1):
    """``rt`` parts over ``n`` simulated items (psi: least squares on 20,000 others)."""
    simulation = Simulation(
        classes=max(2, n // 1000), old_classes=max(1, n // 2000), old_dim=dim, new_dim=dim
    )
    train = simulation.sample(20_000, seed=seed + 1)
    psi = torch.linalg.lstsq(train.new, train.old).solution
    items = simulation.sample(n, seed=seed)
    query_new = items.new[queries]
    parts = transformed_query_merge(
        F.normalize(query_new @ psi, dim=1), items.old, query_new, items.new
    )
    return parts, items.labels


def plain_curve(parts, labels, order, queries, steps: int, k: int) -> tuple[np.ndarray, ...]:
    """mAP@k and recall@k by 21 x 2 independent exact searches over each part's items."""
    labels = labels.numpy()
    item_step = backfill_steps(order, steps)
    query_label = labels[queries]
    possible = np.clip(np.bincount(labels)[query_label] - 1, 1, k)
    spaces = [(parts.query_old, parts.gallery_old), (parts.query_new, parts.gallery_new)]
    mAP, recall = np.zeros(steps + 1), np.zeros(steps + 1)
    for step in range(steps + 1):
        candidates = []
        for (query, gallery), members in zip(
            spaces, (item_step > step, item_step <= step), strict=True
        ):
            items = np.flatnonzero(members)
            if len(items) == 0:
                continue
            index = faiss.IndexFlatIP(gallery.shape[1])
            index.add(np.ascontiguousarray(gallery.numpy()[items]))
            sims, found = index.search(np.ascontiguousarray(query.numpy()), k + 1)
            ids = np.where(found >= 0, items[np.maximum(found, 0)], -1)
            sims[ids == queries[:, None]] = -np.inf  # leave-one-out
            candidates.append((ids, sims))
        ids = np.hstack([c[0] for c in candidates])
        sims = np.hstack([c[1] for c in candidates])
        top = np.take_along_axis(ids, np.lexsort((ids, -sims), axis=1)[:, :k], 1)
        relevant = labels[top] == query_label[:, None]
        precision = np.cumsum(relevant, 1) / np.arange(1, k + 1)
        mAP[step] = ((precision * relevant).sum(1) / possible).mean()
        recall[step] = relevant.any(1).mean()
    return mAP, recall


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--check-n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    k, steps = args.k, args.steps

    n = args.check_n
    parts, labels = simulated_rt(n, args.dim, np.arange(n))
    order = random_order(n, seed=0)
    start = time.perf_counter()
    fast = topk_curve(parts, labels, order, steps=steps, k=k)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    full = evaluate_curve(parts, labels, order, steps=steps, topk=(k,), map_at=(k,))
    full_s = time.perf_counter() - start
    print(f"N = {n:,} (queries = gallery), d = {args.dim}, {steps + 1} fractions, rt, k = {k}")
    print(
        f"  mAP@{k} max |topk_curve - full ranking| = "
        f"{np.abs(fast.mAP - full.map_at[k]).max():.2e}; recall@{k}: "
        f"{np.abs(fast.recall - full.cmc[k]).max():.2e}"
    )
    print(
        f"  topk_curve {fast_s:.1f} s, full-ranking evaluator {full_s:.1f} s: "
        f"{full_s / fast_s:.1f}x; exact fallback searches {fast.exact_searches:,}"
    )
    del parts, labels, full

    n = args.n
    queries = np.sort(np.random.default_rng(0).choice(n, args.queries, replace=False))
    parts, labels = simulated_rt(n, args.dim, queries)
    order = random_order(n, seed=0)
    start = time.perf_counter()
    fast = topk_curve(parts, labels, order, steps=steps, k=k, query_items=queries)
    fast_s = time.perf_counter() - start
    peak = peak_gib()
    start = time.perf_counter()
    plain_map, plain_recall = plain_curve(parts, labels, order, queries, steps, k)
    plain_s = time.perf_counter() - start
    print(f"N = {n:,}, {args.queries:,} queries, d = {args.dim}, {steps + 1} fractions, rt")
    print(
        f"  mAP@{k}: {fast.mAP[0]:.4f} at t=0 -> {fast.mAP[-1]:.4f} at t=1; "
        f"recall@{k} {fast.recall[0]:.4f} -> {fast.recall[-1]:.4f}"
    )
    print(
        f"  topk_curve {fast_s / 60:.2f} min, peak memory {peak:.2f} GiB (goal < 10 min, "
        f"< 8 GB); exact fallback searches {fast.exact_searches:,}"
    )
    print(
        f"  {steps + 1} x 2 independent faiss searches {plain_s / 60:.2f} min; max |difference| "
        f"mAP@{k} {np.abs(fast.mAP - plain_map).max():.2e}, recall@{k} "
        f"{np.abs(fast.recall - plain_recall).max():.2e}"
    )
    print(f"ratio {plain_s / fast_s:.2f}")


if __name__ == "__main__":
    main()
