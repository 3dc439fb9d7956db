"""The merge rules: two parts checked on construction, ranked by one distance, and the
misranking across parts that a miscalibrated merge makes."""

import numpy as np
import pytest
import torch

from backfill_lib.core.merge import (
    TwoPartEmbeddings,
    cross_part_misranking,
    distance_rank_merge,
    rank_gallery,
    single_space,
)
from tests.conftest import unit


def test_two_part_embeddings_reject_bad_input():
    a, b = unit(5, 4), unit(5, 6)
    with pytest.raises(ValueError, match="4-dim queries with 6-dim gallery"):
        TwoPartEmbeddings(a, b, a, a)
    nan = a.clone()
    nan[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        single_space(a, nan, a)
    with pytest.raises(ValueError, match="same gallery"):
        TwoPartEmbeddings(a, a, a[:4], a[:4])


def test_rank_gallery_merges_by_distance():
    old, new = unit(30, 4, 1), unit(30, 4, 2)
    parts = distance_rank_merge(old, old, new, new)
    mask = np.zeros(30, dtype=bool)
    mask[::2] = True
    ids, dist = rank_gallery(parts, mask, k=30)
    d_old = 2 - 2 * old @ old.T
    d_new = 2 - 2 * new @ new.T
    expected = torch.where(torch.as_tensor(mask)[None], d_new, d_old).sort(dim=1, stable=True)
    assert torch.equal(ids, expected.indices) and torch.equal(dist, expected.values)
    ids, _ = rank_gallery(parts, mask, k=5, exclude_self=True)
    assert not (ids == torch.arange(30)[:, None]).any()
    with pytest.raises(ValueError, match="k=31"):
        rank_gallery(parts, mask, k=31)


def test_cross_part_misranking_counts_the_pairs_a_merge_orders_wrongly():
    labels = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1, 1, 0])
    parts = distance_rank_merge(unit(10, 6, 0), unit(10, 6, 1), unit(10, 6, 2), unit(10, 6, 3))
    backfilled = np.arange(10) % 3 == 0
    queries = torch.tensor([0, 3, 7])
    brute = {"old_before_new": [0, 0], "new_before_old": [0, 0]}
    for q in queries.tolist():
        d_old = 2 - 2 * parts.query_old[q] @ parts.gallery_old.T
        d_new = 2 - 2 * parts.query_new[q] @ parts.gallery_new.T
        items = [g for g in range(10) if g != q]
        for key, irr_part, rel_part, d_irr, d_rel in (
            ("old_before_new", False, True, d_old, d_new),
            ("new_before_old", True, False, d_new, d_old),
        ):
            for i in items:
                for r in items:
                    parts_match = backfilled[i] == irr_part and backfilled[r] == rel_part
                    if parts_match and labels[i] != labels[q] and labels[r] == labels[q]:
                        brute[key][0] += int(d_irr[i] < d_rel[r])
                        brute[key][1] += 1
    got = cross_part_misranking(parts, labels, backfilled, queries)
    for key, (hits, pairs) in brute.items():
        assert pairs and got[key] == pytest.approx(hits / pairs)


def test_a_calibrated_merge_misranks_nothing():
    # one space where each class is a tight cluster far from the other: every relevant item
    # of either part is closer than every irrelevant one
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    centres = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    emb = torch.nn.functional.normalize(centres[labels] + 0.05 * unit(6, 3, 4), dim=1)
    parts = distance_rank_merge(emb, emb, emb, emb)
    backfilled = np.array([True, False, True, False, True, False])
    got = cross_part_misranking(parts, labels, backfilled, torch.arange(6))
    assert got == {"old_before_new": 0.0, "new_before_old": 0.0}
