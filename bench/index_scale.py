"""BackfillIndex at a million items: overlap with exact search along the backfill, and
query latency against one index of the same type over N new embeddings.

For each faiss factory (default: exact ``Flat``, ``IVF1024,Flat`` probing 16 lists,
``HNSW32`` with efSearch 128), one run: a BackfillIndex over N simulated old embeddings
(:class:`backfill_lib.simulate.Simulation`, d = 128, 1,000 items per class; ``rt`` rule with
a least-squares linear psi) is backfilled in a random order. At t = 0, 0.25, 0.5, 0.75 and 1
it reports overlap@k, the share of the exact merged top-k that the merged top-k finds (an exact
BackfillIndex in the same state). At t = 0, 0.5 and 1 it times single queries (p50 and p99)
and a batch of ``--queries`` queries (best of 3), interleaved with one faiss index of the
same factory over all N new embeddings: the cost of a system that was never mid-backfill.
Peak memory is the process's maximum RSS so far (run one factory per process for its own).

    python bench/index_scale.py [--n 1000000] [--factories Flat IVF1024,Flat HNSW32]

Last line: ``ratio <batched search time at t = 0.5 / same-type single index>`` of the last
factory. Goal: at most 1.10 for exact and IVF.
"""

from __future__ import annotations

import argparse
import resource
import time

import faiss
import numpy as np
import torch

from backfill_lib import BackfillIndex, Simulation

PARAMETERS = {"IVF": {"nprobe": 16}, "HNSW": {"efSearch": 128}}


def parameters(factory: str) -> dict[str, int]:
    return next((p for prefix, p in PARAMETERS.items() if factory.startswith(prefix)), {})


def plain_index(factory: str, vectors: np.ndarray, training: np.ndarray) -> faiss.Index:
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    index.train(training)
    index.add(vectors)
    space = faiss.ParameterSpace()
    for name, value in parameters(factory).items():
        space.set_index_parameter(index, name, value)
    return index


def latencies(search, queries: np.ndarray, single: int) -> tuple[float, float, float]:
    """p50 and p99 of single-query searches (ms), and the best of 3 batched searches (s)."""
    times = []
    for q in queries[:single]:
        start = time.perf_counter()
        search(q[None])
        times.append(1000 * (time.perf_counter() - start))
    batched = []
    for _ in range(3):
        start = time.perf_counter()
        search(queries)
        batched.append(time.perf_counter() - start)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), min(batched)


def run_factory(factory, old, new, training, queries, psi, order, args) -> float:
    """One factory's table; returns its batched-search ratio at t = 0.5."""
    ratio = float("nan")
    start = time.perf_counter()
    index = BackfillIndex(old, 128, to_old_space=psi, factory=factory, new_training=training)
    index.set_search_parameters(**parameters(factory))
    exact = BackfillIndex(old, 128, to_old_space=psi) if factory != "Flat" else index
    single = plain_index(factory, new, training)
    print(
        f"\n{factory} {parameters(factory)}: built in {time.perf_counter() - start:.0f} s "
        "(BackfillIndex, its exact twin, the single index)"
    )
    print(
        "| t | overlap@k with exact | p50 ms | p99 ms | batch s | single index: p50 | p99 | "
        "batch s | batch ratio |\n|---|---|---|---|---|---|---|---|---|"
    )
    done = 0
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        upto = int(round(fraction * args.n))
        for start_at in range(done, upto, 100_000):  # the backfill, in batches
            ids = order[start_at : min(upto, start_at + 100_000)]
            index.backfill(ids, new[ids])
            if exact is not index:
                exact.backfill(ids, new[ids])
        done = upto
        found = index.search(queries, args.k).ids
        truth = exact.search(queries, args.k).ids
        pairs = zip(found, truth, strict=True)
        overlap = np.mean([len(set(a) & set(b)) / args.k for a, b in pairs])
        row = f"| {fraction:.2f} | {overlap:.4f} |"
        if fraction in (0.0, 0.5, 1.0):
            ours = latencies(lambda q: index.search(q, args.k), queries, args.single)
            base = latencies(lambda q: single.search(q, args.k), queries, args.single)
            row += (
                f" {ours[0]:.2f} | {ours[1]:.2f} | {ours[2]:.3f} | {base[0]:.2f} | "
                f"{base[1]:.2f} | {base[2]:.3f} | {ours[2] / base[2]:.2f} |"
            )
            if fraction == 0.5:
                ratio = ours[2] / base[2]
        else:
            row += " | | | | | | |"
        print(row, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory so far {peak:.2f} GiB")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=200, help="single-query searches timed")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--factories", nargs="+", default=["Flat", "IVF1024,Flat", "HNSW32"])
    args = parser.parse_args()
    simulation = Simulation(
        classes=max(2, args.n // 1000), old_classes=max(1, args.n // 2000), old_dim=128, new_dim=128
    )
    start = time.perf_counter()
    items = simulation.sample(args.n, seed=1)
    old, new = items.old.numpy(), items.new.numpy()
    train = simulation.sample(100_000, seed=2)
    queries = simulation.sample(args.queries, seed=3).new.numpy()
    matrix = torch.linalg.lstsq(train.new, train.old).solution.numpy()

    def psi(q: np.ndarray) -> np.ndarray:  # numpy: no torch thread pool in a query's path
        out = q @ matrix
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    training = train.new.numpy()
    print(
        f"N = {args.n:,}, d = 128, {args.queries:,} queries, k = {args.k}, "
        f"faiss threads {faiss.omp_get_max_threads()}; data in {time.perf_counter() - start:.0f} s"
    )
    order = np.random.default_rng(0).permutation(args.n)
    for factory in args.factories:
        ratio = run_factory(factory, old, new, training, queries, psi, order, args)
    print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
