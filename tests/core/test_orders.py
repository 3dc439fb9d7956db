"""Backfill orders and the curve's steps: masks and join steps agree, orders are permutations."""

import numpy as np
import pytest
import torch

from backfill_lib.core.orders import (
    backfill_steps,
    backfilled_mask,
    check_order,
    fractions,
    make_order,
    softmax_entropy,
    uncertainty_order,
)


def test_backfill_steps_agree_with_masks():
    order = np.random.default_rng(0).permutation(37)
    steps = backfill_steps(order, 20)
    for k, t in enumerate(fractions(20)):
        np.testing.assert_array_equal(steps <= k, backfilled_mask(order, t))
    assert steps.min() >= 1 and steps.max() == 20


def test_orders():
    rnd = make_order("random", 50, seed=3)
    assert sorted(rnd.tolist()) == list(range(50))
    np.testing.assert_array_equal(rnd, make_order("random", 50, seed=3))
    logits = torch.tensor([[5.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    entropy = softmax_entropy(logits)
    np.testing.assert_array_equal(uncertainty_order(entropy), [1, 2, 0])
    assert check_order([2, 0, 1], 3).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="permutation"):
        check_order([0, 0, 1], 3)
    with pytest.raises(ValueError, match="unknown backfill order"):
        make_order("oldest-first", 3)
    with pytest.raises(ValueError, match="uncertainty"):
        make_order("uncertainty", 3)
