"""Notebook 07, serving a backfill: solutions."""

from __future__ import annotations

import numpy as np

from backfill_lib import BackfillIndex


def merge_top_k(
    old_ids: np.ndarray,
    old_distances: np.ndarray,
    new_ids: np.ndarray,
    new_distances: np.ndarray,
    k: int,
) -> np.ndarray:
    """Exercise 1 (implement). Merge one query's top-k lists from the two parts into the
    top-k of the whole gallery: the k smallest distances, ties by the lower id. (An item is
    in exactly one part, so the two lists never share an id.) All arrays ``(k,)``."""
    ids = np.concatenate([old_ids, new_ids])
    distances = np.concatenate([old_distances, new_distances])
    order = np.lexsort((ids, distances))
    return ids[order[:k]]


def answers_at(
    old_gallery: np.ndarray,
    new_gallery: np.ndarray,
    batches: list[np.ndarray],
    queries: np.ndarray,
    old_queries: np.ndarray,
) -> np.ndarray:
    """Exercise 2 (predict). Run the same backfill in batches of 10% or of 20% and search at
    t = 40%: do the answers differ?

    Prediction: no, not in a single id. The index's answer depends only on *which* items
    are in the new part, never on the batches that moved them there (or on a batch
    replayed after a crash): each part is an exact search and the merge is by distance.
    Returns the top-10 ids (DRM: ``old_queries`` search the old part) after moving
    ``batches`` (id arrays) in turn.
    """
    index = BackfillIndex(old_gallery, new_dim=new_gallery.shape[1])
    for batch in batches:
        index.backfill(batch, new_gallery[batch])
    return index.search(queries, k=10, old_query=old_queries).ids
