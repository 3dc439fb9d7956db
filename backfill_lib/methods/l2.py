"""The L2 baseline: regress the new embeddings onto the old ones of the same images.

``L = CE + weight * mean ||phi_n(x) - phi_o(x)||^2``; the simplest compatibility
constraint, and the strongest pull towards the old space. Needs ``d_n = d_o``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.embeddings import reference_embeddings
from .registry import COMPATIBLE_STYLE, COMPATIBLE_WEIGHTS, Method, compatible_parts, register

__all__ = ["L2Loss"]


class L2Loss(nn.Module):
    """Feature regression ``mean ||phi_n(x) - phi_o(x)||^2`` (needs equal dims; ``labels``
    and ``progress`` are not read)."""

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        progress: float = 0.0,
    ) -> torch.Tensor:
        old = reference_embeddings(embeddings, ref_emb, "L2")
        return (embeddings - old).pow(2).sum(1).mean()  # (B, d) -> (B,) -> mean


register(
    Method(
        name="l2",
        family="compatible",
        label="L2",
        style={"color": "#999933", "marker": "^", **COMPATIBLE_STYLE},
        parts=compatible_parts("l2"),
        models=("old", "l2"),
        loss=lambda training, options: L2Loss(**options),
        loss_options={"weight": 1.0},
        search_space={"weight": COMPATIBLE_WEIGHTS},
    )
)
