"""Notebook 08, serving a backfill: solutions.

Exercise 3 (conceptual). A backfill job crashes after writing a batch to the index and
before recording that it did, so the batch is replayed. Why does no answer change, and what
would go wrong if ``backfill`` appended the new embeddings instead of moving the items?

Answer: ``backfill`` *moves* items: an item is in exactly one part, and moving an item that
is already new is a no-op, so the index after the replay is the index before it, and the
answers depend only on which items are new (exercise 2's prefix property holds for the same
reason). Appending would put a replayed item in the new part twice, or in both parts, and
a query would then retrieve it twice: duplicates in the top k, which push a relevant item
out and change the metrics.
"""

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


def top_10_is_a_prefix_of_top_100(
    old_gallery: np.ndarray,
    new_gallery: np.ndarray,
    moved: np.ndarray,
    queries: np.ndarray,
    old_queries: np.ndarray,
) -> bool:
    """Exercise 2 (predict). The index asks each part for its own top k and merges the two
    lists. Search with k = 10, then with k = 100: is the top 10 the first 10 of the top 100,
    for every query, although each part was asked for ten times more?

    Prediction: yes, for every query (all 899 on digits at t = 40%). An item in the merged
    top 10 is, within its own part, among the 10 nearest: any item of its part nearer to
    the query would also be in the merged top 10. So each part's top 10 holds every item of
    that part the merged top 10 needs, and merging the two lists (exercise 1) gives the
    exact merged top 10, the same as the first 10 of the exact merged top 100 (ties between
    parts aside). With exact parts; an approximate part may answer a deeper search from
    other lists. Returns whether the two agree on every query, DRM (``old_queries`` search
    the old part) after moving the items ``moved``.
    """
    index = BackfillIndex(old_gallery, new_dim=new_gallery.shape[1])
    index.backfill(moved, new_gallery[moved])
    top_10 = index.search(queries, k=10, old_query=old_queries).ids
    top_100 = index.search(queries, k=100, old_query=old_queries).ids
    return bool((top_10 == top_100[:, :10]).all())
