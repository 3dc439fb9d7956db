"""The L2 baseline's loss (methods/l2.py)."""

import pytest
import torch

from backfill_lib.methods.l2 import L2Loss
from tests.conftest import unit


def test_l2_is_a_mean_squared_distance():
    """On vectors whose squared distances are known: (1, 0) to itself 0, to (0, 1) 2, to
    (0.6, 0.8) 0.8; L2 is their mean over rows, (0 + 2 + 0.8) / 3."""
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    labels = torch.zeros(3, dtype=torch.long)
    assert L2Loss()(a, labels, ref_emb=b).item() == pytest.approx(2.8 / 3)
    with pytest.raises(ValueError, match="equal embedding dims"):
        L2Loss()(a, labels, ref_emb=unit(3, 3))
    with pytest.raises(ValueError, match="pass them as ref_emb"):
        L2Loss()(a, labels)
