"""RT, the reverse transformation (Seo et al.): one backbone pass per query.

A light network psi maps new embeddings into the old space, ``psi(phi_n(x)) ~ phi_o(x)``,
fitted on the training images' embeddings with both backbones frozen
(``L_rt = ||psi(phi_n(x)) - phi_o(x)||^2``,
:func:`~backfill_lib.core.transformation.regression_loss`). A query is embedded once by
the new model: the old part is scored with ``psi(phi_n(q))``, the new part with
``phi_n(q)`` (:func:`~backfill_lib.core.merge.transformed_query_merge`). Its
transformation: psi with 256 hidden units, 40 epochs of AdamW, regression only.
"""

from __future__ import annotations

from ..core.transformation import TransformConfig
from .registry import Method, register, transformed_query_parts

__all__ = ["PSI_SEARCH_SPACE"]

# What ``backfill tune`` searches for a map fitted by gradient descent without the
# metric-compatible loss: its width and learning rate (rt here, FCT's and FastFill's h too).
PSI_SEARCH_SPACE = {"hidden": (0, 128, 256, 512), "lr": (1e-3, 3e-3, 1e-2)}

register(
    Method(
        name="rt",
        family="online",
        label="RT",
        style={"color": "#E69F00", "ls": "-", "marker": "P"},
        parts=transformed_query_parts("rt"),
        models=("old", "new"),
        transformation=TransformConfig(),
        search_space=PSI_SEARCH_SPACE,
    )
)
