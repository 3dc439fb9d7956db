"""FCT, the forward transformation (Ramanujan et al., CVPR 2022), without side-information.

A light network h maps each stored old embedding into the new space,
``h(phi_o(x)) ~ phi_n(x)``, fitted on the training images' embeddings with both backbones
frozen (``||h(phi_o(x)) - phi_n(x)||^2``: psi's regression, the other way round). Before
serving, the whole old gallery is upgraded by h, one h pass per stored item and no image
read; from then on there is one space: a query is embedded once by the new model and
searched against ``h(phi_o(g))`` for the items not yet backfilled and ``phi_n(g)`` for the
backfilled ones (:func:`~backfill_lib.methods.registry.forward_parts`). At t = 1 it is
new/new. h is psi's network and optimiser (256 hidden units, 40 epochs of AdamW).

``fastfill`` (Jaeckle et al., ICLR 2023) trains the same h with FastFill's two additions:
a discriminative term (a cross-entropy of h's output against the new model's classes,
here the class means of the new training embeddings, so that it needs embeddings alone)
and a per-item uncertainty (a small head predicting h's error, trained in the
heteroscedastic form), whose prediction orders the backfill: the ``fastfill`` order, most
uncertain first, beside ``random`` and ``uncertainty`` (the old classifier's entropy). Its
weight: 1, unsearched.

``fct+side`` gives h FCT's side-information, its cheapest kind: each image averaged down to
4 x 4 pixels, stored as uint8 beside its old embedding (48 bytes per item in colour, 16 in
grey) and read by h after it (:func:`~backfill_lib.core.transformation.side_information`).
FCT's paper takes a self-supervised model's feature (a small extra network trained and run
on every image); a learned side model is not implemented here. Needs the images, so not
in ``backfill evaluate`` (embeddings only) nor on a pack.
"""

from __future__ import annotations

from ..core.transformation import TransformConfig
from .registry import Method, forward_parts, register
from .rt import PSI_SEARCH_SPACE

__all__: list[str] = []

register(
    Method(
        name="fct",
        family="forward",
        label="FCT (no side-info)",
        style={"color": "#332288", "ls": (0, (5, 1, 1, 1)), "marker": "h"},
        parts=forward_parts("fct"),
        models=("old", "new"),
        transformation=TransformConfig(direction="forward"),
        search_space=PSI_SEARCH_SPACE,
    )
)

register(
    Method(
        name="fct+side",
        family="forward",
        label="FCT, 4×4 side-info",
        style={"color": "#CC6677", "ls": (0, (5, 1, 1, 1)), "marker": "H"},
        parts=forward_parts("fct+side"),
        models=("old", "new"),
        transformation=TransformConfig(direction="forward", side_information=4),
        search_space=PSI_SEARCH_SPACE,
    )
)

register(
    Method(
        name="fastfill",
        family="forward",
        label="FastFill (no side-info)",
        style={"color": "#661100", "ls": (0, (5, 1, 1, 1)), "marker": "p"},
        parts=forward_parts("fastfill"),
        models=("old", "new"),
        transformation=TransformConfig(
            direction="forward", discriminative_weight=1.0, learn_uncertainty=True
        ),
        search_space=PSI_SEARCH_SPACE,
    )
)
