"""RACT's regression-alleviating loss (methods/ract.py)."""

import torch

from backfill_lib.methods.ract import RACTLoss
from tests.conftest import toward, unit


def test_ract_falls_when_the_new_to_old_positive_wins():
    labels = torch.tensor([0, 1, 2, 3])
    old = unit(4, 8, 0)
    noise = unit(4, 8, 1)
    loss = RACTLoss(tau=0.05)
    values = [loss(toward(old, noise, w), labels, ref_emb=old).item() for w in (0.0, 0.6, 1.0)]
    assert values == sorted(values, reverse=True)
