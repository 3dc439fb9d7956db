"""RACT (Zhang et al., Hot-Refresh, ICLR 2022): the regression-alleviating compatible loss.

For anchor ``n_i = phi_n(x_i)`` the new-to-old positive ``<n_i, o_i>`` must beat both the
new-to-old negatives ``<n_i, o_j>`` and the new-to-new negatives ``<n_i, n_j>`` of other
classes, in one softmax at temperature ``tau``, so that a new query ranks an item's old
embedding above other classes' items of either model (fewer negative flips during a hot
refresh). Defaults: ``tau`` 0.05 (the paper's), weight 1; each profile's choices are in
docs/choices.md. Needs ``d_n = d_o``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.embeddings import reference_embeddings
from .registry import COMPATIBLE_STYLE, COMPATIBLE_WEIGHTS, Method, compatible_parts, register

__all__ = ["RACTLoss"]


class RACTLoss(nn.Module):
    """Hot-Refresh's regression-alleviating loss.

    For anchor ``n_i`` the logits are ``[<n_i, o_i>, <n_i, o_j>, <n_i, n_j>] / tau`` over
    ``j`` of other classes; cross-entropy towards the first (new-to-old positive).
    ``progress`` is not read.
    """

    def __init__(self, tau: float = 0.05) -> None:
        super().__init__()
        self.tau = tau

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        progress: float = 0.0,
    ) -> torch.Tensor:
        old = reference_embeddings(embeddings, ref_emb, "RACT").detach()  # (B, d): fixed targets
        negative = labels[:, None] != labels[None]  # (B, B): other classes only
        positive = (embeddings * old).sum(1, keepdim=True)  # (B, 1): <n_i, o_i>
        to_old = (embeddings @ old.T).masked_fill(~negative, float("-inf"))  # (B, B) <n_i, o_j>
        to_new = (embeddings @ embeddings.T).masked_fill(~negative, float("-inf"))  # <n_i, n_j>
        logits = torch.cat([positive, to_old, to_new], dim=1) / self.tau  # (B, 1 + 2B)
        return F.cross_entropy(  # towards column 0, the positive
            logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        )


register(
    Method(
        name="ract",
        family="compatible",
        label="RACT (Hot-Refresh)",
        style={"color": "#56B4E9", "marker": "v", **COMPATIBLE_STYLE},
        parts=compatible_parts("ract"),
        models=("old", "ract"),
        loss=lambda training, options: RACTLoss(**options),
        loss_options={"weight": 1.0, "tau": 0.05},
        search_space={"weight": COMPATIBLE_WEIGHTS, "tau": (0.05, 0.1, 0.2)},
    )
)
