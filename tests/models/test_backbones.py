"""Every backbone by name gives its feature size; airbench's whitening decorrelates patches."""

import pytest
import torch

from backfill_lib.models.backbones import ARCHITECTURES, AirbenchNet, make_backbone
from tests.conftest import colour_blobs


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_backbone_gives_its_feature_size(arch):
    net = make_backbone(arch, 3).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, net.out_dim)


def test_whitening_filters_decorrelate_image_patches():
    images = colour_blobs(64)[0].float() / 255
    images = images + 0.5 * images.roll(1, dims=1)  # correlated channels
    net = AirbenchNet((8, 8, 8))
    net.init_whitening(images, eps=0.0)
    half = net.whiten.weight.shape[0] // 2  # the second half is the first, negated
    assert torch.equal(net.whiten.weight[half:], -net.whiten.weight[:half])
    out = torch.nn.functional.conv2d(images, net.whiten.weight[:half])
    flat = out.transpose(0, 1).flatten(1)
    covariance = flat @ flat.T / flat.shape[1]
    assert torch.allclose(covariance, torch.eye(half), atol=1e-3)
    assert not net.whiten.weight.requires_grad  # frozen: only its bias trains
