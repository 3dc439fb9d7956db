"""Small helpers on batches of unit embeddings that the losses and the pipeline share."""

from __future__ import annotations

import torch

__all__ = ["check_same_dim", "class_means", "reference_embeddings"]


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``(classes, d)``: the mean of ``embeddings (N, d)`` over each class ``0..classes-1``
    (BCT's synthesised classifier rows, AdvBCT's boundary centres)."""
    return torch.stack([embeddings[labels == c].mean(0) for c in range(classes)])


def check_same_dim(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Refuse to compare ``(B, d_a)`` with ``(B', d_b)`` embeddings when ``d_a != d_b``."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{what} compares {a.shape[1]}-dim with {b.shape[1]}-dim embeddings: it needs equal "
            "embedding dims (train the new model with the old model's --embed-dim)"
        )


def reference_embeddings(
    embeddings: torch.Tensor, ref_emb: torch.Tensor | None, what: str
) -> torch.Tensor:
    """``ref_emb`` (the old model's embeddings of the same images), checked: given, and of
    the dimension of ``embeddings``."""
    if ref_emb is None:
        raise ValueError(
            f"{what} compares the new embeddings with the old model's embeddings of the same "
            "images: pass them as ref_emb"
        )
    check_same_dim(embeddings, ref_emb, what)
    return ref_emb
