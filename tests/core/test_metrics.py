"""The exact evaluator against brute force and scikit-learn: mAP, CMC, ties, leave-one-out,
mAP@k, AUC, relative gain, flips, and curves stored by the content they were computed from."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from backfill_lib.core.merge import distance_rank_merge, pairwise_distances, single_space
from backfill_lib.core.metrics import (
    Curve,
    auc,
    class_average_precision,
    evaluate_curve,
    negative_flip_rate,
    one_space_curve,
    reference_curve,
    relative_gain,
)
from backfill_lib.core.orders import random_order
from backfill_lib.storage import content_key, load_torch, save_torch
from tests.conftest import unit


def brute_force_map(queries, gallery, labels):
    """Leave-one-out mAP and top-1, one query at a time, with numpy only."""
    d = (2 - 2 * queries @ gallery.T).numpy()
    labels = np.asarray(labels)
    aps, top1 = [], []
    for i in range(len(d)):
        others = np.delete(np.arange(len(d)), i)
        ranking = others[np.argsort(d[i, others], kind="stable")]
        rel = labels[ranking] == labels[i]
        if rel.any():
            hits = np.cumsum(rel)
            aps.append(np.mean(hits[rel] / (np.flatnonzero(rel) + 1)))
            top1.append(rel[0])
    return np.mean(aps), np.mean(top1)


def test_the_evaluator_refuses_orders_steps_and_galleries_it_cannot_evaluate():
    e, labels = unit(6, 4, 1), torch.tensor([0, 0, 1, 1, 2, 2])
    parts = distance_rank_merge(e, e, e, e)
    bad = [
        ((parts, labels, np.array([0, 1, 2, 3, 4, 4])), "permutation of 0..5"),
        ((parts, labels, np.arange(5)), "permutation of 0..5"),
        ((parts, labels, np.arange(6), 0), "steps 0: give an integer from 1"),
        ((parts, labels, np.arange(6), -3), "steps -3"),
        ((single_space(e[:1], e[:1], e[:1]), labels[:1], np.arange(1)), "no other item"),
    ]
    for args, message in bad:
        with pytest.raises(ValueError, match=message):
            evaluate_curve(*args)


def test_map_and_top1_match_brute_force_and_sklearn():
    q, g = unit(200, 12, 1), unit(200, 12, 2)
    labels = torch.randint(0, 6, (200,), generator=torch.Generator().manual_seed(0))
    curve = evaluate_curve(single_space(q, g, g), labels, np.arange(200), steps=1)
    ref_map, ref_top1 = brute_force_map(q, g, labels)
    assert curve.mAP[0] == pytest.approx(ref_map, abs=1e-12)
    assert curve.top1[0] == pytest.approx(ref_top1, abs=1e-12)
    # scikit-learn's AP per query (continuous scores have no ties)
    d = pairwise_distances(q, g).numpy()
    sk = []
    for i in range(200):
        keep = np.arange(200) != i
        sk.append(average_precision_score(labels.numpy()[keep] == labels[i].item(), -d[i, keep]))
    assert curve.mAP[0] == pytest.approx(np.mean(sk), abs=1e-12)
    np.testing.assert_allclose(curve.query_ap[0], sk, atol=1e-12)


@pytest.mark.parametrize("chunk", [64, 1 << 22])
def test_fast_curve_equals_reference_with_ties_and_different_dims(chunk):
    # quantised embeddings produce many exact ties: the tie policy (by gallery index) must agree
    old = torch.round(unit(150, 4, 3) * 2) / 2
    new = torch.round(unit(150, 6, 4) * 2) / 2
    labels = torch.randint(0, 5, (150,), generator=torch.Generator().manual_seed(1))
    order = random_order(150, seed=5)
    # two parts, and one space (both parts the same tensors: the one-entry-per-item path)
    for parts in (distance_rank_merge(old, old, new, new), single_space(old, old, old)):
        fast = evaluate_curve(
            parts, labels, order, steps=10, topk=(1, 3), chunk_entries=chunk, map_at=(3, 40)
        )
        ref = reference_curve(parts, labels, order, steps=10, topk=(1, 3), map_at=(3, 40))
        np.testing.assert_allclose(fast.mAP, ref.mAP, atol=1e-12)
        for k in (3, 40):
            np.testing.assert_allclose(fast.map_at[k], ref.map_at[k], atol=1e-12)
        for k in (1, 3):
            np.testing.assert_array_equal(fast.cmc[k], ref.cmc[k])
        np.testing.assert_array_equal(fast.top1_hits, ref.top1_hits)


def test_tie_policy_breaks_ties_by_gallery_index():
    # query 0; items 1 and 2 sit at the same distance; item 2 is relevant, item 1 is not
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 2])
    ap = evaluate_curve(single_space(e, e, e), labels, np.arange(4), steps=1).query_ap[0]
    # ranking of query 0 is [1, 2, 3] (1 before 2 by index): its relevant item is at rank 2
    assert ap[0] == pytest.approx(0.5)


def test_map_at_k_divides_by_the_relevant_items_a_top_k_can_hold():
    # query 0 ranks [1, 2, 3, 4] (by distance, then index); items 2 and 4 are relevant
    e = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 2, 0])
    curve = evaluate_curve(single_space(e, e, e), labels, np.arange(5), steps=1, map_at=(1, 2, 4))
    ap_query0 = {1: 0.0, 2: (1 / 2) / 2, 4: (1 / 2 + 2 / 4) / 2}
    reference = reference_curve(single_space(e, e, e), labels, np.arange(5), 1, map_at=(1, 2, 4))
    # queries 1 and 3 have no relevant item; queries 2 and 4 share the mean with query 0
    ranking = {2: [1, 3, 0, 4], 4: [3, 2, 1, 0]}  # by <q, g> descending
    for k, expected in ap_query0.items():
        others = []
        for order in ranking.values():
            hits = [labels[i].item() == 0 for i in order[:k]]
            precisions = [sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h]
            others.append(sum(precisions) / min(2, k))
        assert curve.map_at[k][0] == pytest.approx((expected + sum(others)) / 3)
        assert reference.map_at[k][0] == pytest.approx(curve.map_at[k][0])


def test_leave_one_out_is_by_index_not_by_vector_equality():
    # the query's own gallery copy comes from another model (a different vector) and must be
    # excluded; an identical vector at another index must stay in the ranking
    old = unit(6, 3, 7)
    old[5] = old[0]
    new = old.clone()
    new[0] = torch.nn.functional.normalize(torch.tensor([1.0, 2.0, 3.0]), dim=0)
    labels = torch.tensor([0, 1, 1, 1, 1, 0])
    parts = single_space(old, new, new)  # query = old vector, gallery = new vectors
    ap = evaluate_curve(parts, labels, np.arange(6), steps=1).query_ap[0]
    assert ap[0] == pytest.approx(1.0)  # item 5 (identical vector, same class) ranks first


def test_drm_starts_at_old_old_and_ends_at_new_new_exactly_for_any_order():
    old, new = unit(300, 8, 1), unit(300, 16, 2)
    labels = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(3))
    old_old = evaluate_curve(single_space(old, old, old), labels, np.arange(300))
    new_new = evaluate_curve(single_space(new, new, new), labels, np.arange(300))
    orders = [random_order(300, s) for s in range(3)] + [np.arange(300)[::-1].copy()]
    for order in orders:
        drm = evaluate_curve(distance_rank_merge(old, old, new, new), labels, order)
        assert drm.mAP[0] == old_old.mAP[0] and drm.mAP[-1] == new_new.mAP[-1]
        assert drm.top1[0] == old_old.top1[0] and drm.top1[-1] == new_new.top1[-1]


def test_queries_without_relevant_items_are_left_out():
    e = unit(5, 3, 0)
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has a single item
    curve = evaluate_curve(single_space(e, e, e), labels, np.arange(5), steps=1)
    assert np.isnan(curve.query_ap[0, 4]) and not curve.top1_hits[0, 4]
    assert curve.mAP[0] == pytest.approx(np.nanmean(curve.query_ap[0]))


def test_auc_gain_and_flip_rate():
    assert auc(np.array([0.2, 0.4, 0.6])) == pytest.approx(0.4)
    assert relative_gain(0.4, 0.2, 0.6) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="no gain"):
        relative_gain(0.4, 0.3, 0.3)
    reference = np.array([True, True, False, False])
    hits = np.array([[True, True, False, False], [False, True, True, False]])
    assert negative_flip_rate(reference, hits) == pytest.approx(1 / 8)


def test_one_space_map_matches_brute_force():
    e = unit(120, 5, 9)
    labels = torch.arange(120) % 4
    one_space = one_space_curve(e, e, labels).mAP[0]
    assert one_space == pytest.approx(brute_force_map(e, e, labels)[0])


def test_class_average_precision_is_the_map_of_each_class_queries():
    # class 0: three copies of one point (AP 1); class 1: three orthogonal points, tied at
    # similarity 0 with everything, so ties by index put class 0 first: AP (1/4 + 2/5) / 2
    e = torch.tensor([[1.0, 0, 0, 0]] * 3 + [[0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    ap = one_space_curve(e, e, labels).query_ap[0]
    assert class_average_precision(ap, labels) == pytest.approx({0: 1.0, 1: 0.325})
    q, g = unit(120, 5, 3), unit(120, 5, 4)
    labels = torch.arange(120) % 4  # equal class sizes: the mean over classes is the mAP
    per_class = class_average_precision(one_space_curve(q, g, labels).query_ap[0], labels)
    assert np.mean(list(per_class.values())) == pytest.approx(brute_force_map(q, g, labels)[0])


def test_bad_input_is_named():
    e = unit(10, 4, 0)
    with pytest.raises(ValueError, match="queries every gallery item"):
        evaluate_curve(single_space(e, e, e), torch.zeros(9, dtype=torch.long), np.arange(10))
    with pytest.raises(ValueError, match="no query has a relevant item"):
        evaluate_curve(single_space(e, e, e), torch.arange(10), np.arange(10))


def test_a_stored_curve_reads_back_equal_and_its_key_follows_every_value(tmp_path):
    old, new = unit(60, 8, 1), unit(60, 8, 2)
    labels = torch.arange(60) % 4
    parts = distance_rank_merge(old, old, new, new)
    curve = evaluate_curve(parts, labels, random_order(60), 5, map_at=(10,))
    save_torch(curve.state_dict(), tmp_path / "curve.pt")
    back = Curve.from_state_dict(load_torch(tmp_path / "curve.pt"))
    for name in ("fractions", "mAP", "query_ap", "top1_hits"):
        np.testing.assert_array_equal(getattr(back, name), getattr(curve, name))
    assert back.cmc.keys() == curve.cmc.keys()
    np.testing.assert_array_equal(back.map_at[10], curve.map_at[10])
    key = content_key([old, labels], {"steps": 5})
    assert key == content_key([old.clone(), labels.numpy()], {"steps": 5})
    nudged = old.clone()
    nudged[3, 2] += 1e-7
    assert content_key([nudged, labels], {"steps": 5}) != key
    assert content_key([old, labels], {"steps": 6}) != key
    assert content_key([old.double(), labels], {"steps": 5}) != key
