"""Backbones by name: image ``(B, C, H, W)`` -> pooled features ``(B, out_dim)``.

Sized for CPU at 32x32 (airbench, CIFAR ResNets), for tiny inputs (the digits' SmallCNN),
and torchvision's ResNet-18/50 for GPU-scale runs (docs/choices.md compares them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHITECTURES", "AirbenchNet", "CifarResNet", "SmallCNN", "make_backbone"]

ARCHITECTURES = (
    "cnn-small",
    "airbench",
    "airbench-half",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet18",
    "resnet50",
    "resnet18-imagenet",
    "resnet50-imagenet",
)


class SmallCNN(nn.Module):
    """Three conv blocks for tiny inputs (8x8 digits). Output ``(B, 128)``."""

    out_dim = 128

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.net = nn.Sequential(
            *block(in_channels, 32),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 128),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (depth 6n+2, widths 16/32/64). Output ``(B, 64)``."""

    out_dim = 64

    def __init__(self, depth: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
        ]
        cin = 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(_BasicBlock(cin, width, stride if i == 0 else 1))
                cin = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ConvGroup(nn.Module):
    """conv -> max-pool 2 -> BN -> GELU -> conv -> BN -> GELU (airbench's block)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        for conv in (self.conv1, self.conv2):  # identity init: an implicit residual
            nn.init.dirac_(conv.weight.data[: conv.in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """Keller Jordan's airbench94 network (8 conv layers), the CPU profile's backbone.

    A frozen 2x2 patch-whitening convolution (set from the training images by
    :meth:`init_whitening`; random until then), then three groups of two 3x3 convolutions
    (``widths``, 64/256/256 for ``airbench``, 32/128/128 for ``airbench-half``) with
    identity-initialised filters, then a global max-pool. Output ``(B, widths[-1])``.
    It reaches ~94% on CIFAR-10 in about 10 epochs, where a CIFAR ResNet-20 needs well over
    100: the best accuracy per CPU-second among the backbones measured here (bench/README).
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), in_channels: int = 3):
        super().__init__()
        self.whiten = nn.Conv2d(in_channels, 2 * in_channels * 4, 2, bias=True)
        self.whiten.weight.requires_grad_(False)
        groups, cin = [], self.whiten.out_channels
        for width in widths:
            groups.append(_ConvGroup(cin, width))
            cin = width
        self.groups = nn.Sequential(*groups)
        self.out_dim = widths[-1]

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from normalised images ``(N, C, H, W)``: the
        eigenvectors of the 2x2 patch covariance, scaled by ``1/sqrt(eigenvalue + eps)``,
        and their negatives (so that the GELU after it keeps both signs)."""
        c, (h, w) = images.shape[1], self.whiten.kernel_size
        patches = images.float().unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3)
        patches = patches.reshape(-1, c * h * w)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / (eigenvalues[:, None] + eps).sqrt()).reshape(-1, c, h, w)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(F.gelu(self.whiten(x)))
        return torch.amax(x, dim=(2, 3))


def _imagenet_resnet(name: str, in_channels: int, small_images: bool = True) -> nn.Module:
    """torchvision's ResNet-18/50: with ``small_images`` a 3x3 stride-1 stem and no max-pool
    (for 32x32), else the standard 7x7 stride-2 stem and max-pool (for 224x224)."""
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    if small_images:
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.out_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def make_backbone(arch: str, in_channels: int) -> nn.Module:
    """A backbone by name (see ``ARCHITECTURES``); it has an ``out_dim`` attribute."""
    if arch == "cnn-small":
        return SmallCNN(in_channels)
    if arch == "airbench":
        return AirbenchNet((64, 256, 256), in_channels)
    if arch == "airbench-half":
        return AirbenchNet((32, 128, 128), in_channels)
    if arch in ("resnet20", "resnet32", "resnet56"):
        return CifarResNet(int(arch[6:]), in_channels)
    if arch in ("resnet18", "resnet50"):
        return _imagenet_resnet(arch, in_channels)
    if arch in ("resnet18-imagenet", "resnet50-imagenet"):
        return _imagenet_resnet(arch.removesuffix("-imagenet"), in_channels, small_images=False)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
