"""Backbones, the embedding model, the reverse transformation and the discriminator.

An :class:`EmbeddingModel` is ``backbone -> linear embedding head (d dims) -> L2 norm``,
with a classifier on top used only in training. Inputs are images in [0, 1]; the model
normalises them with the dataset's channel statistics it stores as buffers, so a saved
model is self-contained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "AirbenchNet",
    "CifarResNet",
    "CosineClassifier",
    "Discriminator",
    "EmbeddingModel",
    "make_backbone",
    "NewEmbeddingHead",
    "ReverseTransformation",
    "SmallCNN",
]

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


class CosineClassifier(nn.Module):
    """Normalised-softmax classifier: logits = scale * <w_c / ||w_c||, e> for unit e.

    The scale decides whether the rows describe the embedding space: with a large scale the
    softmax saturates early and the rows stop moving wherever they are, away from their
    classes' mean embeddings; with a small one the loss keeps pulling each row towards its
    class mean. BCT reads the old model through exactly these rows.
    """

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 16.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, embed_dim) * embed_dim**-0.5)
        self.scale = scale

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` unit embeddings -> ``(B, num_classes)`` logits."""
        return self.scale * embeddings @ F.normalize(self.weight, dim=1).T


class EmbeddingModel(nn.Module):
    """``x (B, C, H, W) in [0, 1] -> unit embedding (B, embed_dim)``, plus a classifier."""

    mean: torch.Tensor  # buffers: the input normalisation
    std: torch.Tensor

    def __init__(
        self,
        arch: str,
        embed_dim: int,
        num_classes: int,
        in_channels: int,
        mean: list[float],
        std: list[float],
        classifier_scale: float = 16.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.backbone = make_backbone(arch, in_channels)
        out_dim = int(self.backbone.out_dim)  # type: ignore[arg-type]  # set by every backbone
        # BN-neck: centre the pooled features before the bias-free projection. Without it,
        # the mean feature direction dominates normalize(W f + b) for images of classes the
        # model never saw, and they all collapse onto one point.
        self.head = nn.Sequential(
            nn.BatchNorm1d(out_dim),
            nn.Linear(out_dim, embed_dim, bias=False),
        )
        self.classifier = CosineClassifier(embed_dim, num_classes, classifier_scale)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def embed_dim(self) -> int:
        return self.classifier.weight.shape[1]

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialisation from training images ``(N, C, H, W)`` in [0, 1]:
        airbench's whitening filters; nothing for the other backbones."""
        if isinstance(self.backbone, AirbenchNet):
            self.backbone.init_whitening((images - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``(B, embed_dim)``."""
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.normalize(self.head(self.backbone(x)).float(), dim=1)


class ReverseTransformation(nn.Module):
    """psi: new space -> old space, a residual-free MLP ``(B, d_n) -> (B, d_o)`` (unit output).

    ``hidden`` = 0 makes it a single linear map.
    """

    def __init__(self, new_dim: int, old_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.new_dim, self.old_dim = new_dim, old_dim
        self.net: nn.Module
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(new_dim, hidden),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Linear(hidden, old_dim),
            )
        else:
            self.net = nn.Linear(new_dim, old_dim)

    def forward(self, new_embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(new_embeddings), dim=1)


class NewEmbeddingHead(nn.Module):
    """rho: an optional light head on the new embedding, ``(B, d_n) -> (B, d_n)`` unit.

    A residual linear layer initialised at zero, so training starts from the identity.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, new_embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(new_embeddings + self.linear(new_embeddings), dim=1)


class Discriminator(nn.Module):
    """AdvBCT's domain classifier: Linear-BN-ReLU-Linear, ``(B, d) -> (B, 2)`` (old vs new)."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)
