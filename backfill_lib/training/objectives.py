"""What the training loop minimises: a module ``objective(model, images, labels, progress)``.

The old and the independent new model minimise the cross-entropy of their own classifier
(:class:`ClassifierObjective`); a compatible method's new model adds its loss against the
frozen old model (:class:`CompatibleObjective`). The loop (:mod:`.trainer`) calls either
the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.embedding import EmbeddingModel

__all__ = ["ClassifierObjective", "CompatibleObjective"]


class ClassifierObjective(nn.Module):
    """Cross-entropy of the model's own (cosine) classifier."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self, model: EmbeddingModel, images: torch.Tensor, labels: torch.Tensor, progress: float
    ) -> torch.Tensor:
        logits = model.classifier(model(images))  # (B, C)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


class CompatibleObjective(nn.Module):
    """``CE + weight * compat_loss(new, labels, ref_emb=phi_o(x), progress=p)``: a compatible
    method's recipe (METHOD.md section 3), whatever its loss.

    ``compat_loss`` keeps the contract of
    :class:`~backfill_lib.methods.registry.CompatibilityLoss`. The old model is frozen and
    kept out of this module's ``state_dict`` (it has its own cached checkpoint);
    ``compat_loss``'s own parameters (a discriminator, elastic margins) are trained and
    saved with the new model.
    """

    old_model: EmbeddingModel

    def __init__(
        self,
        old_model: EmbeddingModel,
        compat_loss: nn.Module,
        weight: float,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.__dict__["old_model"] = old_model.eval().requires_grad_(False)
        self.compat_loss = compat_loss
        self.weight = weight
        self.label_smoothing = label_smoothing

    def forward(
        self, model: EmbeddingModel, images: torch.Tensor, labels: torch.Tensor, progress: float
    ) -> torch.Tensor:
        new = model(images)  # (B, d_n)
        with torch.no_grad():
            old = self.old_model.to(images.device)(images)  # (B, d_o), frozen
        compat = self.compat_loss(new, labels, ref_emb=old, progress=progress)
        ce = F.cross_entropy(model.classifier(new), labels, label_smoothing=self.label_smoothing)
        return ce + self.weight * compat
