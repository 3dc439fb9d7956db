"""The state of an online backfill and the rules that merge its two parts.

During a backfill the gallery has an old part (items still holding ``phi_o`` embeddings)
and a new part (items already re-extracted). A *merge rule* says which query embedding
scores each part. Every rule in METHOD.md section 4 is one :class:`TwoPartEmbeddings`:

============  =========================  =========================  ===================
rule          old part scored by         new part scored by         forward passes
============  =========================  =========================  ===================
single space  d(phi_c(q), phi_o(g))      d(phi_c(q), phi_c(g))      1
drm           d(phi_o(q), phi_o(g))      d(phi_n(q), phi_n(g))      2
transformed   d(psi(phi_n(q)), phi_o(g)) d(phi_n(q), phi_n(g))      1
query (rt)
============  =========================  =========================  ===================

All embeddings are unit vectors and d(a, b) = ||a - b||^2 = 2 - 2<a, b>. Ranking the union
of both parts by that one distance is the merge. In code every ranking sorts the inner
product <a, b> in descending order (the same order without the rounding of ``2 - 2s``),
and ties are broken by gallery index (lower first), so every ranking is a strict order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "TwoPartEmbeddings",
    "cross_part_misranking",
    "distance_rank_merge",
    "mixed_similarities",
    "pairwise_distances",
    "part_distances",
    "rank_gallery",
    "single_space",
    "transformed_query_merge",
]


@dataclass(frozen=True)
class TwoPartEmbeddings:
    """What a merge rule needs: query and gallery embeddings for each part.

    Shapes: ``query_old (Q, d_o)`` is compared with ``gallery_old (N, d_o)``;
    ``query_new (Q, d_n)`` with ``gallery_new (N, d_n)``. Row ``i`` of both gallery
    tensors is the same gallery item.
    """

    query_old: torch.Tensor
    gallery_old: torch.Tensor
    query_new: torch.Tensor
    gallery_new: torch.Tensor
    forward_passes: int = 1

    def __post_init__(self) -> None:
        for name in ("query_old", "gallery_old", "query_new", "gallery_new"):
            x = getattr(self, name)
            if not isinstance(x, torch.Tensor) or x.ndim != 2:
                raise ValueError(f"{name} must be a 2-D tensor (items, dims), got {type(x)}")
            if not torch.isfinite(x).all():
                bad = int((~torch.isfinite(x)).any(1).sum())
                raise ValueError(
                    f"{name} holds NaN or infinite values in {bad} rows: check the model "
                    "that produced them (a diverged checkpoint?) before evaluating."
                )
        for part in ("old", "new"):
            q, g = getattr(self, f"query_{part}"), getattr(self, f"gallery_{part}")
            if q.shape[1] != g.shape[1]:
                raise ValueError(
                    f"the {part} part compares {q.shape[1]}-dim queries with {g.shape[1]}-dim "
                    "gallery embeddings: both sides of a part must come from one space (for "
                    "models of different dims use drm or a reverse transformation)."
                )
        if len(self.gallery_old) != len(self.gallery_new):
            raise ValueError(
                f"gallery_old has {len(self.gallery_old)} items, gallery_new "
                f"{len(self.gallery_new)}: both must describe the same gallery"
            )
        if len(self.query_old) != len(self.query_new):
            raise ValueError("query_old and query_new must hold the same queries")

    @property
    def one_space(self) -> bool:
        """Both parts are the same tensors: nothing changes as the backfill goes on."""
        return self.query_old is self.query_new and self.gallery_old is self.gallery_new

    @property
    def num_queries(self) -> int:
        return len(self.query_old)

    @property
    def gallery_size(self) -> int:
        return len(self.gallery_old)


def single_space(
    query: torch.Tensor, gallery_old: torch.Tensor, gallery_new: torch.Tensor
) -> TwoPartEmbeddings:
    """One query embedding against both parts (compatible models, or new/old)."""
    return TwoPartEmbeddings(query, gallery_old, query, gallery_new, forward_passes=1)


def distance_rank_merge(
    query_old: torch.Tensor,
    gallery_old: torch.Tensor,
    query_new: torch.Tensor,
    gallery_new: torch.Tensor,
) -> TwoPartEmbeddings:
    """DRM: each part is queried in its own model's space (two forward passes per query)."""
    return TwoPartEmbeddings(query_old, gallery_old, query_new, gallery_new, forward_passes=2)


def transformed_query_merge(
    transformed_query: torch.Tensor,
    gallery_old: torch.Tensor,
    query_new: torch.Tensor,
    gallery_new: torch.Tensor,
) -> TwoPartEmbeddings:
    """RT's merge: the old part is queried with ``psi(phi_n(q))`` (a transformation's
    output), the new part with ``phi_n(q)``; one backbone pass per query."""
    return TwoPartEmbeddings(
        transformed_query, gallery_old, query_new, gallery_new, forward_passes=1
    )


def pairwise_distances(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """``d = 2 - 2<q, g>`` for unit rows: ``(Q, d), (N, d) -> (Q, N)``."""
    return 2.0 - 2.0 * queries @ gallery.T  # (Q, N): ||q - g||^2 of unit rows


def mixed_similarities(
    parts: TwoPartEmbeddings,
    backfilled: np.ndarray | torch.Tensor,
    queries: torch.Tensor | slice = slice(None),
) -> torch.Tensor:
    """Merged inner products ``(Q', N)``: each item scored by the rule of the part it is in
    (the distance is ``2 - 2 *`` this)."""
    mask = torch.as_tensor(np.asarray(backfilled), dtype=torch.bool)  # (N,) in the new part
    s_old = parts.query_old[queries] @ parts.gallery_old.T  # (Q', N) in the old space
    s_new = parts.query_new[queries] @ parts.gallery_new.T  # (Q', N) in the new space
    return torch.where(mask[None], s_new, s_old)  # (Q', N): each item by its part's rule


def rank_gallery(
    parts: TwoPartEmbeddings,
    backfilled: np.ndarray | torch.Tensor,
    k: int,
    queries: torch.Tensor | slice = slice(None),
    exclude_self: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The merged top-``k``: ``(ids (Q', k), distances (Q', k))``, ties by gallery index.

    ``exclude_self`` drops gallery item ``i`` from query ``i``'s ranking (leave-one-out,
    when the query set is the gallery).
    """
    sim = mixed_similarities(parts, backfilled, queries)  # (Q', N)
    if exclude_self:
        ids = torch.arange(parts.num_queries)[queries]
        sim[torch.arange(len(sim)), ids] = float("-inf")  # a query never retrieves itself
    if not 1 <= k <= sim.shape[1] - int(exclude_self):
        raise ValueError(f"k={k} must be between 1 and the gallery size {sim.shape[1]}")
    top, idx = torch.sort(sim, dim=1, descending=True, stable=True)  # ties: lower index first
    return idx[:, :k], 2.0 - 2.0 * top[:, :k]  # (Q', k) ids, (Q', k) distances


def _distances_by_part(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor,
    backfilled: np.ndarray | torch.Tensor,
    queries: torch.Tensor,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """What both calibration measures read: ``relevant (Q, N)`` and, for the old then the
    new part, ``(distances (Q, N), in_part (Q, N))``, each query's own item left out."""
    mask = torch.as_tensor(np.asarray(backfilled), dtype=torch.bool)[None]  # (1, N)
    relevant = labels[queries][:, None] == labels[None]  # (Q, N) same class
    keep = torch.ones_like(relevant)
    keep[torch.arange(len(queries)), queries] = False  # leave-one-out
    return relevant, [
        (pairwise_distances(parts.query_old[queries], parts.gallery_old), ~mask & keep),
        (pairwise_distances(parts.query_new[queries], parts.gallery_new), mask & keep),
    ]


def part_distances(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor,
    backfilled: np.ndarray | torch.Tensor,
    queries: torch.Tensor,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Distances from ``queries`` (gallery ids, leave-one-out) to each part's items.

    Returns ``(old_part, new_part)``, each ``{"relevant": (m,), "irrelevant": (m',)}``:
    what a merge compares. It is calibrated when both parts' relevant distances lie below
    both parts' irrelevant ones.
    """
    relevant, by_part = _distances_by_part(parts, labels, backfilled, queries)
    old_part, new_part = (
        {
            "relevant": dist[in_part & relevant].numpy(),
            "irrelevant": dist[in_part & ~relevant].numpy(),
        }
        for dist, in_part in by_part
    )
    return old_part, new_part


def cross_part_misranking(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor,
    backfilled: np.ndarray | torch.Tensor,
    queries: torch.Tensor,
) -> dict[str, float]:
    """How often a merge puts an irrelevant item of one part before a relevant item of the
    other: the miscalibration that :func:`part_distances` shows as histograms, in one number.

    Over ``queries`` (gallery ids, leave-one-out) and every pair of an irrelevant item of
    one part and a relevant item of the other, the share of pairs whose irrelevant item is
    strictly closer to the query. Returns ``{"old_before_new": p, "new_before_old": p'}``
    ("an irrelevant old item before a relevant new one" and the reverse); 0 is a perfectly
    calibrated merge, NaN when no such pair exists.
    """
    relevant, [(dist_old, in_old), (dist_new, in_new)] = _distances_by_part(
        parts, labels, backfilled, queries
    )
    counts = {"old_before_new": [0, 0], "new_before_old": [0, 0]}
    for row, rel in enumerate(relevant):
        old, new = in_old[row], in_new[row]
        for key, irrelevant, closer_than in (
            ("old_before_new", dist_old[row][old & ~rel], dist_new[row][new & rel]),
            ("new_before_old", dist_new[row][new & ~rel], dist_old[row][old & rel]),
        ):
            below = torch.searchsorted(torch.sort(irrelevant).values, closer_than, side="left")
            counts[key][0] += int(below.sum())
            counts[key][1] += len(irrelevant) * len(closer_than)
    return {key: hits / pairs if pairs else float("nan") for key, (hits, pairs) in counts.items()}
