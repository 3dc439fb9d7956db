"""Judging a comparison: per-query AUCs, the trapezoid AUC, paired bootstrap intervals over
queries and the verdict they give (METHOD.md section 5b)."""

import numpy as np
import pytest

from backfill_lib.core.merge import distance_rank_merge
from backfill_lib.core.metrics import auc, evaluate_curve
from backfill_lib.core.orders import random_order
from backfill_lib.core.statistics import (
    combine,
    paired_bootstrap,
    per_query_mean,
    trapezoid_auc,
    verdict,
)
from tests.conftest import unit


def test_the_auc_is_the_mean_of_the_queries_own_aucs():
    """Resampling queries resamples the AUC: AUC-mAP is the mean of per-query AUCs."""
    labels = np.repeat(np.arange(6), 10)
    parts = distance_rank_merge(unit(60, 8, 0), unit(60, 8, 0), unit(60, 5, 1), unit(60, 5, 1))
    curve = evaluate_curve(parts, labels, random_order(60), steps=5)
    assert np.nanmean(per_query_mean(curve.query_ap)) == pytest.approx(auc(curve.mAP), abs=1e-12)


def test_the_trapezoid_weighs_the_ends_half():
    assert trapezoid_auc(np.array([0.0, 1.0, 1.0])) == pytest.approx(0.75)  # mean: 0.667
    assert trapezoid_auc(np.array([0.2, 0.2])) == pytest.approx(0.2)


def test_the_bootstrap_is_seeded_paired_and_covers_the_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 2000)
    b = a + 0.01 + rng.normal(0, 0.002, 2000)  # b beats a by 0.01 on every query, give or take
    boot = paired_bootstrap({"a": a, "b": b}, seed=3)
    again = paired_bootstrap({"a": a, "b": b}, seed=3)
    assert np.array_equal(boot.means["a"], again.means["a"])
    low, high = boot.interval("a")
    assert low < a.mean() < high and high - low == pytest.approx(0.0088, rel=0.2)  # 3.92 sd/sqrt(n)
    paired = boot.interval("b", minus="a")
    assert paired[0] > 0 and paired[1] - paired[0] < 0.001  # paired: the per-query noise only
    assert boot.interval("a", minus="a") == (0.0, 0.0)


def test_two_bootstraps_with_one_seed_pair_across_them():
    """Two orders of one experiment query the same items: same seed, same resamples."""
    rng = np.random.default_rng(1)
    random_order_aucs = rng.uniform(size=500)
    uncertainty_aucs = random_order_aucs + 0.001
    first = paired_bootstrap({"m": random_order_aucs}, seed=0)
    second = paired_bootstrap({"m": uncertainty_aucs}, seed=0)
    low, high = second.interval("m", minus="m", minus_from=first)
    assert low == pytest.approx(0.001) and high == pytest.approx(0.001)


def test_left_out_queries_are_left_out_of_every_key():
    a = np.array([0.1, np.nan, 0.3, 0.5])
    b = np.array([0.2, 0.9, np.nan, 0.6])
    boot = paired_bootstrap({"a": a, "b": b}, resamples=50)
    assert set(np.round(boot.means["a"], 6)) <= {0.1, 0.3, 0.5, 0.2, 0.4}  # from 0.1 and 0.5
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap({"a": a, "b": b[:3]})
    with pytest.raises(ValueError, match="at least 2"):
        paired_bootstrap({"a": np.array([0.1, np.nan])})


@pytest.mark.parametrize(
    ("interval", "expected"),
    [((0.001, 0.02), "holds"), ((-0.02, -0.001), "fails"), ((-0.001, 0.02), "tie")],
)
def test_a_verdict_is_the_side_of_zero_the_interval_lies_on(interval, expected):
    assert verdict(interval) == expected


def test_verdicts_combine_into_one_only_when_they_agree():
    assert combine(["holds", "holds"]) == "holds"
    assert combine(["fails", "fails"]) == "fails"
    assert combine(["holds", "fails"]) == combine(["holds", "tie"]) == "tie"
    with pytest.raises(ValueError, match="no verdict"):
        combine([])
