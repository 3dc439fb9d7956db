"""BCT (Shen et al., CVPR 2020): the influence loss through the frozen old classifier.

``L = CE(W_n phi_n(x), y) + weight * CE(W_o phi_n(x), y)``: the new model's embeddings must
be classified correctly by the old model's classifier rows ``W_o``, which ties them to the
old space. Classes the old model never saw either skip the second term
(``unseen="skip"``) or use synthesised rows: the old model's normalised class-mean
embeddings (``unseen="synthesise"``, openBCT's pseudo classifier). Needs ``d_n = d_o``.
Defaults: weight 1 (the paper's), ``synthesise``; each profile's choices and their grids are
in docs/choices.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import (
    COMPATIBLE_STYLE,
    COMPATIBLE_WEIGHTS,
    CompatibleTraining,
    Method,
    compatible_parts,
    register,
)

__all__ = ["BCTLoss"]


class BCTLoss(nn.Module):
    """Influence loss: cross-entropy of new embeddings through the frozen old classifier.

    ``old_weight (C_o, d)``: the old classifier's rows. ``synthesised (C, d)`` optional:
    rows for every class (old-model class means) used for labels ``>= C_o`` when
    ``unseen="synthesise"``; with ``unseen="skip"`` those samples are left out. The old model
    is read through its rows, so ``ref_emb`` and ``progress`` are not read.
    """

    weight: torch.Tensor  # a buffer: the (normalised) classifier rows

    def __init__(
        self,
        old_weight: torch.Tensor,
        scale: float = 16.0,
        synthesised: torch.Tensor | None = None,
        unseen: str = "synthesise",
    ) -> None:
        super().__init__()
        if unseen not in ("skip", "synthesise"):
            raise ValueError(f"unseen must be 'skip' or 'synthesise', got {unseen!r}")
        weight = F.normalize(old_weight.detach(), dim=1)  # (C_o, d)
        if unseen == "synthesise" and synthesised is not None and len(synthesised) > len(weight):
            weight = torch.cat([weight, F.normalize(synthesised[len(weight) :].detach(), dim=1)])
        self.register_buffer("weight", weight)  # (C_o or C, d)
        self.scale = scale

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        progress: float = 0.0,
    ) -> torch.Tensor:
        if embeddings.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"BCT needs equal embedding dims: new {embeddings.shape[1]} vs old "
                f"{self.weight.shape[1]}; train the new model with "
                f"embed_dim {self.weight.shape[1]}"
            )
        seen = labels < len(self.weight)  # (B,): the classes that have an old row
        if not seen.any():
            return embeddings.sum() * 0.0
        logits = self.scale * embeddings[seen] @ self.weight.T  # (B', C): old-classifier logits
        return F.cross_entropy(logits, labels[seen])


def _bct_loss(training: CompatibleTraining, options: dict) -> nn.Module:
    old = training.old.classifier
    return BCTLoss(old.weight.detach(), old.scale, synthesised=training.class_centres(), **options)


register(
    Method(
        name="bct",
        family="compatible",
        label="BCT",
        style={"color": "#CC79A7", "marker": "s", **COMPATIBLE_STYLE},
        parts=compatible_parts("bct"),
        models=("old", "bct"),
        loss=_bct_loss,
        loss_options={"weight": 1.0, "unseen": "synthesise"},
        search_space={"weight": COMPATIBLE_WEIGHTS, "unseen": ("synthesise", "skip")},
    )
)
