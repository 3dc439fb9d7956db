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


def test_closed_form_maps_solve_the_regression_without_training():
    """Least squares recovers a linear map exactly; Procrustes recovers a rotation (and
    keeps every distance); both fit in one step, and the configuration refuses what a
    closed form cannot do."""
    generator = torch.Generator().manual_seed(2)
    new = unit(500, 8, 3)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=generator))  # (8, 8) orthogonal
    old = new @ rotation  # unit rows already
    labels = torch.arange(500) % 5
    for solver in ("least_squares", "procrustes"):
        fitted = fit_transformation(new, old, labels, TransformConfig(hidden=0, solver=solver))
        torch.testing.assert_close(fitted.transform(new), old, atol=1e-5, rtol=0)
        assert len(fitted.history) == 1 and fitted.history[0] < 1e-9
    mixed = torch.nn.functional.normalize(new @ torch.randn(8, 6, generator=generator), dim=1)
    procrustes = fit_transformation(
        new, mixed, labels, TransformConfig(hidden=0, solver="procrustes")
    )
    w = procrustes.psi.net.weight.T  # (8, 6): orthonormal columns
    torch.testing.assert_close(w.T @ w, torch.eye(6), atol=1e-5, rtol=0)
    least = fit_transformation(
        new, mixed, labels, TransformConfig(hidden=0, solver="least_squares")
    )
    assert least.history[0] <= procrustes.history[0] + 1e-6  # the wider family fits better
    with pytest.raises(ValueError, match="set hidden 0"):
        TransformConfig(solver="procrustes")
    with pytest.raises(ValueError, match="regression term alone"):
        TransformConfig(hidden=0, solver="least_squares", mc_weight=4.0)
    with pytest.raises(ValueError, match="choose one of"):
        TransformConfig(solver="newton")


def test_a_forward_map_is_fitted_from_the_old_space_onto_the_new():
    new = unit(600, 10, 4)
    old = torch.nn.functional.normalize(new[:, :6] + 0.1 * unit(600, 6, 5), dim=1)
    labels = torch.arange(600) % 4
    forward = fit_transformation(new, old, labels, TransformConfig(direction="forward", epochs=5))
    assert forward.psi.new_dim == 6 and forward.psi.old_dim == 10  # h: (B, 6) -> (B, 10)
    assert forward.transform(old).shape == (600, 10)
    with pytest.raises(ValueError, match="regression term alone"):
        TransformConfig(direction="forward", mc_weight=1.0)


def test_fastfill_s_uncertainty_head_learns_which_items_the_map_cannot_fit():
    """The items in one half of the old space have targets h cannot predict (noise):
    FastFill's head, which sees the old embedding, gives them a higher predicted variance,
    and its order backfills them first."""
    from backfill_lib.core.orders import make_order

    old = unit(800, 8, 6)
    noisy = old[:, 0] > 0  # a region of the input the head can recognise
    clean_target = torch.nn.functional.normalize(old @ torch.eye(8)[:, :6] + 0.05, dim=1)
    new = torch.where(noisy[:, None], unit(800, 6, 7), clean_target)
    labels = torch.arange(800) % 4
    config = TransformConfig(direction="forward", learn_uncertainty=True, discriminative_weight=1.0)
    fitted = fit_transformation(new, old, labels, config)
    predicted = fitted.uncertainty(old)  # (800,) log variance, from the old embeddings
    assert predicted[noisy].mean() > predicted[~noisy].mean() + 0.3
    first_half = make_order("fastfill", 800, uncertainty=predicted)[:400]
    assert noisy[torch.from_numpy(first_half)].float().mean() > 0.9
    with pytest.raises(ValueError, match="learned no uncertainty"):
        fit_transformation(
            new, old, labels, TransformConfig(direction="forward", epochs=1)
        ).uncertainty(old)
    with pytest.raises(ValueError, match="belong to a forward map"):
        TransformConfig(learn_uncertainty=True)  # a reverse map


def test_side_information_is_each_image_averaged_down_and_stored_as_bytes():
    from backfill_lib.core.transformation import side_information

    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    side = side_information(images, 4, batch=2)  # (5, 3 * 4 * 4)
    assert side.shape == (5, 48) and side.min() >= 0 and side.max() <= 1
    block = images[2, 1, 8:16, 24:32].float().mean().round() / 255  # channel 1, row 1, col 3
    assert side[2, 16 + 1 * 4 + 3] == block
    assert torch.equal((side * 255).round(), side * 255 // 1)  # whole bytes
    with pytest.raises(ValueError, match="belong to a forward map"):
        TransformConfig(side_information=4)
