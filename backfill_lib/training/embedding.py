"""Trained models applied to images: unit embeddings, and the classifier's accuracy."""

from __future__ import annotations

import torch

from ..data.dataset import Images
from ..models.embedding import EmbeddingModel
from .compute import default_device
from .files import embed_files

__all__ = ["accuracy", "embed"]


@torch.no_grad()
def embed(model: EmbeddingModel, images: Images, batch_size: int = 1024) -> torch.Tensor:
    """Unit embeddings ``(N, d)`` (CPU, float32) of uint8 images ``(N, C, H, W)`` (or of
    :class:`~backfill_lib.data.files.ImageFiles`, decoded a batch at a time)."""
    if not isinstance(images, torch.Tensor):
        return embed_files(model, images)
    device = default_device()
    model.eval().to(device)
    out = [
        model(images[i : i + batch_size].to(device).float() / 255).cpu()  # (b, d) per batch
        for i in range(0, len(images), batch_size)
    ]
    model.cpu()
    return torch.cat(out)


@torch.no_grad()
def accuracy(model: EmbeddingModel, images: Images, labels: torch.Tensor) -> float:
    """Top-1 accuracy of the model's classifier (labels must be in its class range)."""
    logits = model.classifier(embed(model, images))  # (N, C)
    return float((logits.argmax(1) == labels).float().mean())
