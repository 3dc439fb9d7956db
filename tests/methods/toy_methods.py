"""Two toy methods, added as a contributor adds one (CONTRIBUTING.md): this module and its
``register`` calls, nothing else. ``test_registry.py`` runs it into a copy of the registry.

- ``toy``: a compatible method whose loss pulls each new embedding towards the old model's
  embedding of the same image, by cosine;
- ``toy-rt``: a reverse transformation whose psi is one linear map (``hidden=0``).
"""

import torch
from torch import nn

from backfill_lib.core.embeddings import reference_embeddings
from backfill_lib.core.transformation import TransformConfig
from backfill_lib.methods.registry import (
    COMPATIBLE_STYLE,
    Method,
    compatible_parts,
    register,
    transformed_query_parts,
)


class CosineToOldLoss(nn.Module):
    """``mean(1 - <n_i, o_i>)``: a trivial compatibility loss (``labels`` and ``progress``
    are not read)."""

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        progress: float = 0.0,
    ) -> torch.Tensor:
        old = reference_embeddings(embeddings, ref_emb, "the toy loss")
        return (1 - (embeddings * old).sum(1)).mean()  # (B,) cosine distances -> mean


register(
    Method(
        name="toy",
        family="compatible",
        label="Toy (cosine to old)",
        style={"color": "#117733", "marker": "h", **COMPATIBLE_STYLE},
        parts=compatible_parts("toy"),
        models=("old", "toy"),
        loss=lambda training, options: CosineToOldLoss(**options),
        loss_options={"weight": 1.0},
    )
)
register(
    Method(
        name="toy-rt",
        family="online",
        label="Toy RT (linear psi)",
        style={"color": "#332288", "ls": "-", "marker": "p"},
        parts=transformed_query_parts("toy-rt"),
        models=("old", "new"),
        transformation=TransformConfig(hidden=0, epochs=10),
    )
)
