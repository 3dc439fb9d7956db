"""RT with psi in closed form: the baselines every learned psi is measured against.

A linear psi without bias, ``psi(n) = normalize(n W)``, fitted to ``L_rt`` on the training
images' embeddings with no training loop (:func:`~backfill_lib.training.transformation.
fit_transformation`, ``solver``): ``rt-ls`` takes the least-squares W, ``rt-procrustes`` the
best W with orthonormal columns (orthogonal Procrustes: a rotation of the new space onto
the old one when the dims agree, which keeps every distance among new embeddings). Both fit
in well under a second and have nothing to tune. Served exactly as ``rt``: one backbone pass
per query (:func:`~backfill_lib.core.merge.transformed_query_merge`).
"""

from __future__ import annotations

from ..core.transformation import TransformConfig
from .registry import Method, register, transformed_query_parts

__all__: list[str] = []

register(
    Method(
        name="rt-ls",
        family="online",
        label="RT, least squares",
        style={"color": "#DDCC77", "ls": "-", "marker": "<"},
        parts=transformed_query_parts("rt-ls"),
        models=("old", "new"),
        transformation=TransformConfig(hidden=0, solver="least_squares"),
    )
)

register(
    Method(
        name="rt-procrustes",
        family="online",
        label="RT, Procrustes",
        style={"color": "#117733", "ls": "-", "marker": ">"},
        parts=transformed_query_parts("rt-procrustes"),
        models=("old", "new"),
        transformation=TransformConfig(hidden=0, solver="procrustes"),
    )
)
