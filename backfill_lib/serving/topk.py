"""Top-k backfilling curves at scale: mAP@k and recall@k without ranking the whole gallery.

The full-ranking evaluator (:func:`backfill_lib.core.metrics.evaluate_curve`) sorts all ``2N``
entries of every query: exact, and fine up to N of about 50,000. Past that only the top k
matter. Every merge rule ranks each part by its own similarity and merges the parts by
that one similarity, so at every fraction the merged top-k is the top-k of (the new part's
top-k and the old part's top-k).

:func:`topk_curve` therefore searches each part's *whole* gallery once, with faiss, for
its ``depth`` best items (``depth`` > k), and at each step filters both lists by
membership: an item is in the new part from its join step on and in the old part before
it. A filtered list is exact as far as it goes: every item of the part missing from it
scores at or below the list's last similarity (its *bound*), and entries tied with the
bound are dropped, since faiss may have returned any of them. The merged top-k of both
filtered lists is then exact unless a part's list ran short (fewer than k entries) *and*
the merged k-th similarity does not beat that part's bound. Only for those queries and
steps is the short part searched exactly over its current items (by brute force; a short
list means a small part, at the ends of the backfill). Two searches of the full gallery
per rule instead of ``2 (S + 1)``; the tests hold the result equal to the full ranking's
(``evaluate_curve(..., map_at=(k,), topk=(k,))``).

Queries are gallery items (leave-one-out by index, as in :mod:`backfill_lib.core.metrics`):
query ``i`` is item ``query_items[i]``, left out of its own ranking. Ranking: similarity
descending, ties by gallery index. mAP@k and recall@k (= CMC top-k) are defined in
:mod:`backfill_lib.core.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
import torch

from ..core.merge import TwoPartEmbeddings
from ..core.orders import backfill_steps, check_order, fractions

__all__ = ["TopKCurve", "topk_curve"]

_EXACT_ENTRIES = 1 << 25  # similarities per brute-force block (128 MB of float32)


@dataclass
class TopKCurve:
    """mAP@k and recall@k over backfill fractions (``S + 1`` points each).

    ``exact_searches`` counts the (query, step, part) triples whose part was searched
    exactly because its filtered list ran short: how much the depth saved.
    """

    fractions: np.ndarray
    k: int
    mAP: np.ndarray
    recall: np.ndarray
    exact_searches: int


@dataclass
class _Candidates:
    """One part's sorted candidates for a chunk of queries: ``ids, sims (B, L)``, which
    entries are certain (above the bound) and the bound ``(B,)`` (-inf: the list is the
    whole part)."""

    ids: np.ndarray
    sims: np.ndarray
    certain: np.ndarray
    bound: np.ndarray


def _search(queries: np.ndarray, gallery: np.ndarray, depth: int, own: np.ndarray) -> _Candidates:
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    sims, ids = index.search(queries, depth)
    # faiss orders ties arbitrarily: sort each list by (similarity desc, gallery index)
    by_rank = np.lexsort((ids, -sims), axis=1)
    ids, sims = np.take_along_axis(ids, by_rank, 1), np.take_along_axis(sims, by_rank, 1)
    if depth >= len(gallery):
        bound = np.full(len(queries), -np.inf, dtype=np.float32)
    else:
        bound = sims[:, -1].copy()
    certain = (sims > bound[:, None]) & (ids != own[:, None]) & (ids >= 0)
    return _Candidates(ids, sims, certain, bound)


def _first_k(part: _Candidates, keep: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The first ``k`` kept entries of each row: ``ids, sims (B, k)`` (padding: id -1,
    similarity -inf) and how many rows held (B,)."""
    keep = keep & part.certain
    slots = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    valid = np.take_along_axis(keep, slots, 1)
    ids = np.where(valid, np.take_along_axis(part.ids, slots, 1), -1)
    sims = np.where(valid, np.take_along_axis(part.sims, slots, 1), -np.inf)
    return ids, sims, valid.sum(1)


def _merge(ids: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each row of candidates ``(B, L)`` by (similarity desc, index); padding
    (id -1) last."""
    padded = np.where(ids < 0, np.iinfo(np.int64).max, ids)
    by_rank = np.lexsort((padded, -sims), axis=1)[:, :k]
    return np.take_along_axis(ids, by_rank, 1), np.take_along_axis(sims, by_rank, 1)


def _exact_top_k(
    queries: np.ndarray, gallery: np.ndarray, members: np.ndarray, own: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top ``k`` of each query over gallery items ``members`` (own item left
    out): ``ids, sims (B, k)``, padded with id -1 / -inf when the part is smaller."""
    sims = queries @ gallery[members].T
    sims[members[None] == own[:, None]] = -np.inf
    ids = np.broadcast_to(members, sims.shape)
    if sims.shape[1] > k:
        # every entry tied with the k-th best stays, so the tie-break by index is exact
        kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1 : k]
        at_least = sims >= kth
        width = int(at_least.sum(1).max())
        slots = np.argsort(~at_least, axis=1, kind="stable")[:, :width]
        ids, sims = np.take_along_axis(ids, slots, 1), np.take_along_axis(sims, slots, 1)
        ids = np.where(np.take_along_axis(at_least, slots, 1), ids, -1)
    ids = np.where(np.isneginf(sims), -1, ids)
    sims = np.where(ids < 0, -np.inf, sims).astype(np.float32)
    top_ids, top_sims = _merge(ids, sims, min(k, ids.shape[1]))
    pad = k - top_ids.shape[1]
    return (
        np.pad(top_ids, ((0, 0), (0, pad)), constant_values=-1),
        np.pad(top_sims, ((0, 0), (0, pad)), constant_values=-np.inf),
    )


def _checked(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor | np.ndarray,
    query_items: np.ndarray | None,
    steps: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``topk_curve``'s inputs checked, as int64 ``labels (N,)`` and ``query_items (Q,)``."""
    n = parts.gallery_size
    labels = np.asarray(labels, dtype=np.int64)
    if query_items is None:
        if parts.num_queries != n:
            raise ValueError(
                f"{parts.num_queries} queries for {n} gallery items: give query_items, the "
                "gallery index of every query"
            )
        query_items = np.arange(n)
    query_items = np.asarray(query_items, dtype=np.int64)
    if query_items.shape != (parts.num_queries,) or len(labels) != n:
        raise ValueError(
            f"query_items {query_items.shape} and labels {labels.shape} must give one entry "
            f"per query ({parts.num_queries}) and per gallery item ({n})"
        )
    if not 1 <= k < n:
        raise ValueError(f"k={k}: give 1 <= k < the gallery size {n}")
    if steps < 1:
        raise ValueError(f"steps {steps}: give 1 or more")
    return labels, query_items


def topk_curve(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor | np.ndarray,
    order: np.ndarray,
    steps: int = 20,
    k: int = 100,
    query_items: np.ndarray | None = None,
    depth: int | None = None,
    chunk: int = 2048,
) -> TopKCurve:
    """mAP@k and recall@k of a merge rule at every fraction of a backfill, exactly.

    ``parts``: the rule's embeddings; its ``Q`` queries are gallery items
    ``query_items (Q,)`` (default: every item, ``Q == N``). ``labels (N,)``: class of every
    gallery item. ``order (N,)``: backfill order. ``depth``: how many items each part's
    full search returns (default ``4 k``; deeper lists run short less often, see the
    module docstring). ``chunk``: queries per search (memory is about ``chunk * depth *
    24`` bytes).
    """
    n = parts.gallery_size
    labels, query_items = _checked(parts, labels, query_items, steps, k)
    item_step = backfill_steps(check_order(order, n), steps)
    depth = min(n, max(depth or 4 * k, k) + 1)  # +1: the query's own item comes back too
    relevant_count = np.bincount(labels)[labels[query_items]] - 1
    counted = relevant_count > 0
    if not counted.any():
        raise ValueError("no query has a relevant item in the gallery: every class has one item")
    evaluated = 0 if parts.one_space else steps
    ap = np.zeros((evaluated + 1, len(query_items)))
    hit = np.zeros((evaluated + 1, len(query_items)), dtype=bool)
    exact_searches = 0
    spaces = [(parts.query_old, parts.gallery_old), (parts.query_new, parts.gallery_new)]
    arrays = [[np.ascontiguousarray(x.float().numpy()) for x in space] for space in spaces]
    for start in range(0, len(query_items), chunk):
        rows = slice(start, start + chunk)
        own = query_items[rows]
        lists = [_search(q[rows], g, depth, own) for q, g in arrays[: 2 - parts.one_space]]
        for step in range(evaluated + 1):
            in_new = item_step <= step if not parts.one_space else np.zeros(n, dtype=bool)
            top, searched = _merged_top_k(lists, arrays, in_new, rows, own, k)
            exact_searches += searched
            relevant = (labels[np.maximum(top, 0)] == labels[own][:, None]) & (top >= 0)
            precision = np.cumsum(relevant, 1) / np.arange(1, k + 1)
            possible = np.clip(relevant_count[rows], 1, k)  # left-out queries: 0 / 1
            ap[step, rows] = (precision * relevant).sum(1) / possible
            hit[step, rows] = relevant.any(1)
    if parts.one_space:
        ap, hit = np.repeat(ap, steps + 1, 0), np.repeat(hit, steps + 1, 0)
    return TopKCurve(
        fractions=fractions(steps),
        k=k,
        mAP=ap[:, counted].mean(1),
        recall=hit[:, counted].mean(1),
        exact_searches=exact_searches,
    )


def _merged_top_k(
    lists: list[_Candidates],
    arrays: list[list[np.ndarray]],
    in_new: np.ndarray,
    rows: slice,
    own: np.ndarray,
    k: int,
) -> tuple[np.ndarray, int]:
    """The merged top-k ids ``(B, k)`` of one chunk at one step, and how many part
    searches had to be exact."""
    members = [~in_new, in_new][: len(lists)]
    firsts = [
        _first_k(part, member[np.maximum(part.ids, 0)], k)
        for part, member in zip(lists, members, strict=True)
    ]
    ids, sims = _merge(np.hstack([f[0] for f in firsts]), np.hstack([f[1] for f in firsts]), k)
    merged_full = ids[:, -1] >= 0
    exact_searches = 0
    for p, (part, member) in enumerate(zip(lists, members, strict=True)):
        part_ids, part_sims, count = firsts[p]
        # short: fewer than k of the part's items (the query's own left out), and the
        # merged k-th does not rank before every item the list may be missing
        available = member.sum() - member[own]
        short = np.flatnonzero(
            (count < np.minimum(k, available)) & ~(merged_full & (sims[:, -1] > part.bound))
        )
        queries, gallery = arrays[p]
        items = np.flatnonzero(member)
        block = max(1, _EXACT_ENTRIES // max(1, len(items)))
        for at in range(0, len(short), block):
            redo = short[at : at + block]
            part_ids[redo], part_sims[redo] = _exact_top_k(
                queries[rows][redo], gallery, items, own[redo], k
            )
        exact_searches += len(short)
    if exact_searches:
        ids, _ = _merge(np.hstack([f[0] for f in firsts]), np.hstack([f[1] for f in firsts]), k)
    return ids, exact_searches
