"""Query overhead of ``BackfillIndex`` at 50% backfill with the ``rt`` merge.

N synthetic unit items (d = 128), half backfilled; 1,000 queries, k = 100. Compared, side
by side in one run, with one exact faiss search (``IndexFlatIP``) over N new embeddings:
the cost of a system that was fully backfilled. The ``rt`` search includes psi (a
128-256-128 MLP) on the queries, both part searches and the merge. The two are called in
turn in every repeat and each keeps its best time. Goal: at most 1.10x.

    python bench/index_query.py [--n 100000]

Last line: ``ratio <BackfillIndex.search time / single flat search time>``.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch

from backfill_lib import BackfillIndex, PsiNetwork


def unit(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def best_of_interleaved(repeats: int, *fns) -> list[float]:
    """Best wall time of each function, calling them in turn in every repeat (so that a
    slow spell of the machine hits both alike)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    old, new, queries = unit(args.n, 128, rng), unit(args.n, 128, rng), unit(args.queries, 128, rng)
    psi = PsiNetwork(128, 128).eval()

    @torch.no_grad()
    def transform(q: np.ndarray) -> np.ndarray:
        return psi(torch.from_numpy(q)).numpy()

    index = BackfillIndex(old, 128, to_old_space=transform)
    half = rng.permutation(args.n)[: args.n // 2]
    index.backfill(half, new[half])
    flat = faiss.IndexFlatIP(128)
    flat.add(new)
    t_flat, t_ours = best_of_interleaved(
        args.repeats, lambda: flat.search(queries, args.k), lambda: index.search(queries, args.k)
    )
    print(
        f"N={args.n}, d=128, {args.queries} queries, k={args.k}, "
        f"faiss threads={faiss.omp_get_max_threads()}"
    )
    print(f"one IndexFlatIP search over N new embeddings: {1000 * t_flat:8.1f} ms")
    print(f"BackfillIndex.search at 50% backfill (rt):    {1000 * t_ours:8.1f} ms")
    print(f"ratio {t_ours / t_flat:.3f}")


if __name__ == "__main__":
    main()
