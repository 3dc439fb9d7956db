"""DRM, distance rank merge (Seo et al.): each part queried in its own model's space.

No training: the query is embedded by both models (two backbone passes), the old part is
scored by ``d(phi_o(q), phi_o(g))`` and the new part by ``d(phi_n(q), phi_n(g))``, and the
union is ranked by distance. The two spaces' distance scales differ, so the merge is
miscalibrated (notebook 03 shows by how much).
"""

from __future__ import annotations

from ..core.merge import TwoPartEmbeddings, distance_rank_merge
from .registry import GalleryEmbeddings, Method, register

__all__: list[str] = []


def _parts(gallery: GalleryEmbeddings) -> TwoPartEmbeddings:
    old, new = gallery.models["old"], gallery.models["new"]
    return distance_rank_merge(old, old, new, new)


register(
    Method(
        name="drm",
        family="online",
        label="DRM (2 passes)",
        style={"color": "#0072B2", "ls": "-", "marker": "o"},
        parts=_parts,
        models=("old", "new"),
    )
)
