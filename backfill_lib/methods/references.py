"""The curve's two ends and the upgrade with no compatibility: old/old, new/new, new/old.

``old/old`` serves the old model until the backfill is over (an offline backfill: 0% of
the gain), ``new/new`` the new model from the first day (100%); both are always evaluated.
``new/old`` queries the old gallery with the new model: what an upgrade without any
compatibility gives.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.merge import TwoPartEmbeddings, single_space
from .registry import GalleryEmbeddings, Method, register

__all__: list[str] = []


def _one_model(model: str) -> Callable[[GalleryEmbeddings], TwoPartEmbeddings]:
    def parts(gallery: GalleryEmbeddings) -> TwoPartEmbeddings:
        embeddings = gallery.models[model]  # (N, d): queries and both parts alike
        return single_space(embeddings, embeddings, embeddings)

    return parts


def _new_query_old_gallery(gallery: GalleryEmbeddings) -> TwoPartEmbeddings:
    new = gallery.models["new"]
    return single_space(new, gallery.models["old"], new)


register(
    Method(
        name="old/old",
        family="reference",
        label="old/old (no backfill)",
        style={"color": "#8c8c8c", "ls": "--"},
        parts=_one_model("old"),
        models=("old",),
    )
)
register(
    Method(
        name="new/new",
        family="reference",
        label="new/new (full backfill)",
        style={"color": "#000000", "ls": "--"},
        parts=_one_model("new"),
        models=("new",),
    )
)
register(
    Method(
        name="new/old",
        family="baseline",
        label="new/old (incompatible)",
        style={"color": "#D55E00", "ls": ":", "marker": "x"},
        parts=_new_query_old_gallery,
        models=("old", "new"),
    )
)
