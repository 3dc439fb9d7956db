"""The top-k evaluator at scale equals the full ranking (tests/test_metrics.py holds that
one to its plain definition)."""

import numpy as np
import pytest
import torch

from backfill_lib.core.merge import (
    distance_rank_merge,
    rank_gallery,
    single_space,
    transformed_query_merge,
)
from backfill_lib.core.metrics import evaluate_curve
from backfill_lib.core.orders import backfill_steps, random_order
from backfill_lib.serving.topk import topk_curve


def quantised(n: int, dim: int, seed: int) -> torch.Tensor:
    """Unit-ish vectors on a coarse grid: every inner product is exact in float32 (whatever
    the summation order), and many tie."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, (n, dim), generator=g).float() / 4


def rules(n: int):
    old, new = quantised(n, 6, 1), quantised(n, 8, 2)
    psi = quantised(n, 6, 3)  # a transformed query: any old-space vector
    return {
        "drm": distance_rank_merge(old, old, new, new),
        "rt": transformed_query_merge(psi, old, new, new),
        "one space": single_space(old, old, old),
    }


@pytest.mark.parametrize("depth", [None, 12, 400])
def test_topk_curve_equals_the_full_ranking_with_ties(depth):
    n, k = 300, 10
    labels = torch.randint(0, 7, (n,), generator=torch.Generator().manual_seed(4))
    labels[-1] = 7  # a class of one item: its query has nothing to find and is left out
    order = random_order(n, seed=2)
    for name, parts in rules(n).items():
        full = evaluate_curve(parts, labels, order, steps=10, topk=(k,), map_at=(k,))
        fast = topk_curve(parts, labels, order, steps=10, k=k, depth=depth, chunk=64)
        np.testing.assert_allclose(fast.mAP, full.map_at[k], atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(fast.recall, full.cmc[k], err_msg=name)
        if depth == 12 and name != "one space":
            assert fast.exact_searches > 0  # shallow lists: the fallback was exercised


def test_topk_curve_of_a_query_subset_equals_brute_force():
    n, k, steps = 250, 15, 5
    labels = torch.randint(0, 5, (n,), generator=torch.Generator().manual_seed(7))
    order = random_order(n, seed=3)
    parts = rules(n)["drm"]
    queries = np.sort(np.random.default_rng(0).choice(n, 40, replace=False))
    subset = distance_rank_merge(
        parts.query_old[queries], parts.gallery_old, parts.query_new[queries], parts.gallery_new
    )
    fast = topk_curve(subset, labels, order, steps=steps, k=k, query_items=queries, depth=20)
    item_step = backfill_steps(order, steps)
    for step in range(steps + 1):
        ids, _ = rank_gallery(
            parts, item_step <= step, k, torch.as_tensor(queries), exclude_self=True
        )
        relevant = (labels[ids] == labels[queries][:, None]).double()
        possible = torch.clamp(torch.bincount(labels)[labels[queries]] - 1, max=k)
        precision = relevant.cumsum(1) / torch.arange(1, k + 1)
        ap = (precision * relevant).sum(1) / possible
        assert fast.mAP[step] == pytest.approx(ap.mean().item(), abs=1e-12)
        assert fast.recall[step] == pytest.approx(relevant.any(1).double().mean().item())


def test_bad_input_is_named():
    parts = rules(20)["drm"]
    labels = torch.arange(20) % 3
    with pytest.raises(ValueError, match="give query_items"):
        topk_curve(
            rules(20)["drm"].__class__(
                parts.query_old[:5], parts.gallery_old, parts.query_new[:5], parts.gallery_new
            ),
            labels,
            np.arange(20),
        )
    with pytest.raises(ValueError, match="k=20"):
        topk_curve(parts, labels, np.arange(20), k=20)
    with pytest.raises(ValueError, match="permutation"):
        topk_curve(parts, labels, np.zeros(20, dtype=int), k=5)
