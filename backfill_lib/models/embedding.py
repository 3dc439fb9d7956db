"""The embedding model every method trains: backbone -> embedding head -> unit vector.

An :class:`EmbeddingModel` is ``backbone -> linear embedding head (d dims) -> L2 norm``,
with a :class:`CosineClassifier` on top used only in training. Inputs are images in [0, 1];
the model normalises them with the dataset's channel statistics it stores as buffers, so a
saved model is self-contained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import AirbenchNet, make_backbone

__all__ = ["CosineClassifier", "EmbeddingModel"]


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
        return self.scale * embeddings @ F.normalize(self.weight, dim=1).T  # (B, C) cosines


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
        x = (x - self.mean) / self.std  # (B, C, H, W), standardised per channel
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.backbone(x)  # (B, out_dim)
        return F.normalize(self.head(features).float(), dim=1)  # (B, d), unit rows
