"""Fitting a transformation: psi learned from embeddings generalises to held-out items."""

import pytest
import torch

from backfill_lib.core.transformation import TransformConfig
from backfill_lib.training.transformation import fit_transformation
from tests.conftest import unit


def test_reverse_transformation_reduces_held_out_regression_error():
    # old = a fixed nonlinear function of new: psi must learn it from 800 pairs
    new = unit(1000, 12, 0)
    mix = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    old = torch.nn.functional.normalize(torch.tanh(new @ mix), dim=1)
    labels = torch.arange(1000) % 5
    untrained = fit_transformation(new[:800], old[:800], labels[:800], TransformConfig(epochs=0))
    trained = fit_transformation(new[:800], old[:800], labels[:800], TransformConfig(epochs=30))

    def error(t):
        return ((t.transform(new[800:]) - old[800:]) ** 2).sum(1).mean().item()

    assert error(trained) < 0.25 * error(untrained)
    with pytest.raises(ValueError, match="NaN"):
        bad = new.clone()
        bad[0, 0] = float("nan")
        fit_transformation(bad, old, labels)
