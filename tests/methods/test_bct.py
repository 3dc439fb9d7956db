"""BCT's influence loss through the frozen old classifier (methods/bct.py)."""

import pytest
import torch

from backfill_lib.methods.bct import BCTLoss
from tests.conftest import toward, unit


def test_bct_loss_falls_as_new_embeddings_align_with_old_rows():
    rows = unit(4, 8, 0)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    noise = unit(6, 8, 1)
    loss = BCTLoss(rows, scale=16.0)
    values = [loss(toward(rows[labels], noise, w), labels).item() for w in (0.0, 0.5, 0.9, 1.0)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.05


def test_bct_unseen_classes_skip_or_synthesise():
    rows, means = unit(2, 8, 0), unit(4, 8, 1)
    labels = torch.tensor([0, 1, 2, 3])
    e = means[labels]
    skip = BCTLoss(rows, synthesised=means, unseen="skip")
    assert skip(e, labels).item() == pytest.approx(BCTLoss(rows)(e[:2], labels[:2]).item())
    synth = BCTLoss(rows, synthesised=means)
    assert synth.weight.shape == (4, 8)
    with pytest.raises(ValueError, match="equal embedding dims"):
        skip(unit(4, 5), labels)
    with pytest.raises(ValueError, match="unseen"):
        BCTLoss(rows, unseen="ignore")
