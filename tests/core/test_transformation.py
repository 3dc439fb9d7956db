"""psi, rho and the two losses a transformation is fitted with (METHOD.md section 4)."""

import pytest
import torch

from backfill_lib.core.transformation import MetricCompatibleLoss, regression_loss
from tests.conftest import toward, unit


def test_regression_is_a_mean_squared_distance():
    """On vectors whose squared distances are known: (1, 0) to itself 0, to (0, 1) 2, to
    (0.6, 0.8) 0.8; L_rt is their mean over rows, (0 + 2 + 0.8) / 3."""
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    assert regression_loss(a, b).item() == pytest.approx(2.8 / 3)
    with pytest.raises(ValueError, match="equal embedding dims"):
        regression_loss(a, unit(3, 3))


def test_regression_loss_moves_only_the_transformation():
    transformed, old = unit(4, 5, 0).requires_grad_(True), unit(4, 5, 1).requires_grad_(True)
    regression_loss(transformed, old).backward()
    assert torch.allclose(transformed.grad, 2 * (transformed - old).detach() / 4)
    assert old.grad is None  # the old model's embeddings are a fixed target


def test_metric_compatible_loss_prefers_one_scale_for_both_parts():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    protos_old, protos_new = unit(3, 8, 0), unit(3, 6, 1)
    old = toward(protos_old[labels], unit(6, 8, 2), 0.8)
    new = toward(protos_new[labels], unit(6, 6, 3), 0.8)
    loss = MetricCompatibleLoss(tau=0.1)
    # psi maps each image onto its old embedding, or onto another class's
    aligned = loss(new, labels, ref_emb=old, transformed=old.clone())
    wrong = loss(new, labels, ref_emb=old, transformed=old[torch.tensor([2, 3, 4, 5, 0, 1])])
    assert aligned < wrong
    with pytest.raises(ValueError, match="equal embedding dims"):
        loss(new, labels, ref_emb=old, transformed=new)
