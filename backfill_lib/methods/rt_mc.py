"""RT+MC, the reverse transformation with metric-compatible learning (Seo et al.).

psi is fitted with ``L_rt + mc_weight * L_mc``
(:class:`~backfill_lib.core.transformation.MetricCompatibleLoss`): a contrastive loss over
both parts of a backfilling gallery in one softmax, so that a relevant item of either part
outscores an irrelevant item of either part, which is what a merge by distance needs. With
rho the identity (the default) the new model is untouched and the system at t = 1 is
new/new: no regret by construction. Defaults on digits: ``mc_weight`` 4, ``tau`` 0.1;
each profile's choices and their grids are in docs/choices.md.

``rt+mc+rho`` also learns rho, the light head on the new side (METHOD.md section 4): the
new part holds ``rho(phi_n(g))`` and queries it with ``rho(phi_n(q))``, so the loss may move
the new embeddings too. The price: at t = 1 the system is rho(new)/rho(new), no longer
new/new by construction. Same options as ``rt+mc`` otherwise.

``bct+rt+mc`` combines the two families: BCT's compatible model plays the new model, and
psi with the metric-compatible loss maps its embeddings into the old space. Its curve
starts at psi(BCT)/old and ends at BCT/BCT (BCT's own mAP, not the independent new
model's): what online backfilling adds on top of compatible training.
"""

from __future__ import annotations

from ..core.transformation import TransformConfig
from .registry import Method, register, transformed_query_parts

__all__ = ["MC_SEARCH_SPACE"]

# What ``backfill tune`` searches for psi with the metric-compatible loss (rho learned or not)
MC_SEARCH_SPACE = {
    "tau": (0.05, 0.1, 0.2, 0.4),
    "mc_weight": (1.0, 4.0, 16.0, 64.0),
    "hidden": (256, 512),
}

register(
    Method(
        name="rt+mc",
        family="online",
        label="RT+MC (Seo et al.)",
        style={"color": "#009E73", "ls": "-", "marker": "*", "lw": 2.6, "ms": 5},
        parts=transformed_query_parts("rt+mc"),
        models=("old", "new"),
        transformation=TransformConfig(mc_weight=4.0),
        search_space=MC_SEARCH_SPACE,
    )
)

register(
    Method(
        name="rt+mc+rho",
        family="online",
        label="RT+MC, learned ρ",
        style={"color": "#AA4499", "ls": "-", "marker": "d"},
        parts=transformed_query_parts("rt+mc+rho"),
        models=("old", "new"),
        transformation=TransformConfig(mc_weight=4.0, learn_new_head=True),
        search_space=MC_SEARCH_SPACE,
    )
)

register(
    Method(
        name="bct+rt+mc",
        family="online",
        label="BCT, then RT+MC",
        style={"color": "#44AA99", "ls": "-", "marker": "X"},
        parts=transformed_query_parts("bct+rt+mc", mapped_from="bct"),
        models=("old", "bct"),
        transformation=TransformConfig(mc_weight=4.0),
        mapped_from="bct",
    )
)
