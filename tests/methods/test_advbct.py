"""AdvBCT's adversarial term and elastic boundary (methods/advbct.py)."""

import pytest
import torch
import torch.nn.functional as F

from backfill_lib.methods.advbct import (
    AdvBCTLoss,
    ElasticBoundaryLoss,
    class_radius,
    gradient_reversal,
    reversal_scale,
)
from tests.conftest import unit


def test_gradient_reversal_is_identity_forward_and_scaled_negation_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = gradient_reversal(x, alpha=0.3)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(4.0).expand(3, 4))
    assert reversal_scale(0.0) == 0.0 and 0.99 < reversal_scale(1.0) < 1.0


def test_elastic_boundary_is_zero_inside_and_grows_outside():
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    radii = torch.tensor([0.2, 0.6])
    loss = ElasticBoundaryLoss(centres, radii)  # r0 = 0.4
    b = loss.boundaries().detach()
    # class 0: r < r0 so the boundary grows beyond r; class 1: it shrinks below r
    assert b[0] > 0.2 and b[1] < 0.6
    labels = torch.tensor([0])
    inside = torch.tensor([[1.0, 0.1]])
    assert loss(inside, labels).item() == 0.0
    far = [loss(torch.tensor([[1.0 - s, s]]), labels).item() for s in (0.3, 0.6, 0.9)]
    assert 0 < far[0] < far[1] < far[2]


def test_elastic_boundary_averages_over_the_embeddings_outside():
    loss = ElasticBoundaryLoss(torch.tensor([[1.0, 0.0]]), torch.tensor([0.2]), r0=0.2)
    inside, outside = [1.0, 0.1], [0.0, 1.0]
    labels = torch.tensor([0, 0])
    alone = loss(torch.tensor([outside]), labels[:1])
    assert loss(torch.tensor([inside, outside]), labels).item() == pytest.approx(alone.item())
    assert loss(torch.tensor([inside, inside]), labels).item() == 0.0


def test_elastic_boundary_ignores_classes_the_old_model_never_saw():
    loss = ElasticBoundaryLoss(torch.tensor([[1.0, 0.0]]), torch.tensor([0.2]), r0=0.2)
    outside = torch.tensor([[0.0, 1.0]])
    assert loss(outside, torch.tensor([1])).item() == 0.0
    both = loss(torch.cat([outside, outside]), torch.tensor([0, 1]))
    assert both.item() == pytest.approx(loss(outside, torch.tensor([0])).item())


def test_class_radius_ignores_outliers_beyond_the_tukey_fence():
    typical = torch.linspace(0.2, 0.4, 99)  # q1 0.25, q3 0.35: fence 0.35 + 1.5 * 0.1 = 0.5
    distances = torch.cat([typical, torch.tensor([1.6])])  # one mislabelled image
    assert class_radius(distances, None).item() == pytest.approx(1.6)
    assert class_radius(distances).item() == pytest.approx(0.4)
    assert class_radius(torch.cat([typical, torch.tensor([0.45])])).item() == pytest.approx(0.45)


def test_advbct_adversarial_weight_falls_to_zero_over_training():
    centres, radii = unit(3, 6, 0), torch.full((3,), 2.0)  # every embedding is inside
    loss = AdvBCTLoss(centres, radii, lambda_adv=1.0)
    new, labels, old = unit(8, 6, 1), torch.arange(8) % 3, unit(8, 6, 2)
    assert loss(new, labels, ref_emb=old, progress=0.5).item() > 0
    assert loss(new, labels, ref_emb=old, progress=1.0).item() == 0.0


def test_advbct_trains_the_discriminator_and_reverses_its_gradient():
    """Against the same discriminator loss computed without the reversal layer: the
    discriminator gets the same gradient (it learns to tell old from new), the new embeddings
    get it negated and scaled by ``reversal_scale(progress)`` (they learn to fool it)."""
    torch.manual_seed(0)
    centres, radii = unit(3, 6, 0), torch.full((3,), 2.0)  # every embedding inside: no L_eb
    loss = AdvBCTLoss(centres, radii, lambda_adv=0.7)
    new, labels, old = unit(8, 6, 1).requires_grad_(True), torch.arange(8) % 3, unit(8, 6, 2)
    progress = 0.3
    loss(new, labels, ref_emb=old, progress=progress).backward()
    plain_new = new.detach().clone().requires_grad_(True)
    logits = loss.discriminator(torch.cat([old, plain_new]))
    domain = torch.cat([torch.zeros(8), torch.ones(8)]).long()
    plain = 0.7 * (1 - progress) * F.cross_entropy(logits, domain)
    parameters = list(loss.discriminator.parameters())
    plain_grads = torch.autograd.grad(plain, [plain_new, *parameters])
    assert plain_grads[0].abs().max() > 1e-4  # a real gradient to compare against
    assert torch.allclose(new.grad, -reversal_scale(progress) * plain_grads[0], atol=1e-7)
    for parameter, expected in zip(parameters, plain_grads[1:], strict=True):
        assert torch.allclose(parameter.grad, expected, atol=1e-7)
