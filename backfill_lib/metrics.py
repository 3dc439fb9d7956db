"""Exact retrieval metrics over a whole backfilling curve.

Definitions (METHOD.md section 5):

- Each query ranks the whole gallery by distance, itself excluded (leave-one-out *by
  index*: query ``i`` is gallery item ``i``, even when its two copies were embedded by
  different models). Ties are broken by gallery index, so a ranking is a strict order.
- AP of a query = mean, over its relevant items (same class), of the precision at that
  item's rank; mAP = mean AP over queries. CMC top-k = share of queries with a relevant
  item among the first k. Queries with no relevant item in the gallery are left out of
  every mean.
- The curve evaluates fractions ``t = k / S``, ``k = 0..S``; AUC is the mean of its points.

:func:`evaluate_curve` is the fast evaluator. For each query it sorts the ``2N`` candidate
entries (every item once with its old-part distance, once with its new-part distance) a
single time. At step ``k`` an item's old entry is live iff the item is not yet backfilled
and its new entry iff it is; the rank of a live relevant entry is one plus the number of
live entries before it. Those counts, for every relevant entry at every step, come from
one scatter of +-1 "live from / live until" events into buckets between consecutive
relevant entries, followed by two cumulative sums. So the whole curve costs about one sort
per query. :func:`reference_curve` is the readable definition (re-sort every ranking at
every step); the tests and ``bench/curve_eval.py`` compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .backfill import TwoPartEmbeddings, backfill_steps, fractions, mixed_distances, pairwise_distances


@dataclass
class Curve:
    """A metric curve over backfill fractions. Arrays have ``S + 1`` points.

    ``query_ap (S + 1, Q)`` is every query's AP (NaN for left-out queries);
    ``top1_hits (S + 1, Q)`` says, per step and query, whether the top-1 item was
    relevant (``False`` for left-out queries); it feeds :func:`negative_flip_rate`.
    """

    fractions: np.ndarray
    mAP: np.ndarray
    cmc: dict[int, np.ndarray]
    query_ap: np.ndarray = field(repr=False)
    top1_hits: np.ndarray = field(repr=False)

    @property
    def top1(self) -> np.ndarray:
        return self.cmc[1]


def evaluate_curve(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor | np.ndarray,
    order: np.ndarray,
    steps: int = 20,
    topk: tuple[int, ...] = (1, 5),
    chunk_entries: int = 1 << 22,
) -> Curve:
    """mAP and CMC top-k of a merge rule at every fraction of a backfill.

    ``parts``: the rule's embeddings, queries = gallery (``Q == N``, leave-one-out).
    ``labels (N,)``: class of every gallery item. ``order (N,)``: backfill order.
    ``chunk_entries`` bounds memory: queries are processed in chunks of about
    ``chunk_entries / (2N)`` (peak memory is roughly 60 bytes per entry).
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    n = parts.gallery_size
    if parts.num_queries != n or len(labels) != n:
        raise ValueError(
            f"the evaluation protocol queries every gallery item: got {parts.num_queries} "
            f"queries, {n} gallery items and {len(labels)} labels"
        )
    if 1 in topk:
        topk = tuple(sorted(set(topk)))
    else:
        topk = (1, *sorted(set(topk)))
    item_step = torch.from_numpy(backfill_steps(np.asarray(order), steps))
    chunk = max(1, chunk_entries // (2 * n))
    ap = torch.full((steps + 1, n), float("nan"), dtype=torch.float64)
    first_rank = torch.zeros((steps + 1, n), dtype=torch.int64)
    for start in range(0, n, chunk):
        q = torch.arange(start, min(n, start + chunk))
        ap[:, q], first_rank[:, q] = _evaluate_chunk(parts, labels, item_step, q, steps)
    counted = ~torch.isnan(ap[0])
    if not counted.any():
        raise ValueError("no query has a relevant item in the gallery: every class has one item")
    hits = {k: ((first_rank <= k) & counted).double() for k in topk}
    return Curve(
        fractions=fractions(steps),
        mAP=ap[:, counted].mean(1).numpy(),
        cmc={k: h[:, counted].mean(1).numpy() for k, h in hits.items()},
        query_ap=ap.numpy(),
        top1_hits=hits[1].bool().numpy(),
    )


def _evaluate_chunk(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor,
    item_step: torch.Tensor,
    q: torch.Tensor,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AP ``(S+1, B)`` and rank of the first relevant item ``(S+1, B)`` for queries ``q``."""
    b, n = len(q), parts.gallery_size
    d_old = pairwise_distances(parts.query_old[q], parts.gallery_old)
    d_new = pairwise_distances(parts.query_new[q], parts.gallery_new)
    # entry 2j is item j in the old part, 2j+1 in the new: a stable sort breaks ties by index
    entries = torch.stack([d_old, d_new], dim=2).view(b, 2 * n)
    del d_old, d_new
    entry = torch.sort(entries, dim=1, stable=True).indices
    del entries
    item = entry >> 1
    is_new = (entry & 1).bool()
    del entry
    step = item_step[item]  # the item is in the new part from this step on
    self_entry = item == q[:, None]
    relevant = (labels[item] == labels[q][:, None]) & ~self_entry
    del item
    # bucket of an entry = number of relevant entries at or before it (inclusive cumsum)
    bucket = relevant.cumsum(1)
    n_rel_entries = bucket[:, -1]  # 2 entries (old and new) per relevant item
    width = int(n_rel_entries.max()) + 1
    if width == 1:  # no query of this chunk has a relevant item
        never = torch.full((steps + 1, b), torch.iinfo(torch.int64).max)
        return torch.full((steps + 1, b), float("nan"), dtype=torch.float64), never
    events = torch.zeros(b * width * (steps + 2), dtype=torch.int32)
    base = (torch.arange(b)[:, None] * width + bucket) * (steps + 2)
    live = (~self_entry).int()
    # an old entry is live on steps [0, step): +1 at 0, -1 at step; a new one from step on
    events.scatter_add_(0, (base + torch.where(is_new, step, 0)).flatten(), live.flatten())
    events.scatter_add_(0, (base + step).flatten(), (-live * (~is_new)).flatten())
    live_before = events.view(b, width, steps + 2)[:, :, : steps + 1].cumsum(2).cumsum(1)
    # the relevant entries themselves, in rank order: position, part and join step
    slot = torch.where(relevant, bucket - 1, width - 1)
    position = torch.zeros((b, width), dtype=torch.int64).scatter_(
        1, slot, torch.arange(2 * n).expand(b, -1).contiguous()
    )[:, : width - 1]
    real = torch.arange(width - 1)[None] < n_rel_entries[:, None]
    rel_new = is_new.gather(1, position)[:, :, None]
    rel_step = step.gather(1, position)[:, :, None]
    k = torch.arange(steps + 1)[None, None]
    rel_live = torch.where(rel_new, k >= rel_step, k < rel_step) & real[:, :, None]
    rank = live_before[:, : width - 1] + 1
    precision = rel_live.cumsum(1).double() / rank
    n_relevant = (n_rel_entries // 2).double()
    # a sequential cumsum, not a pairwise sum: the dead entries add exact zeros, so any two
    # rules whose live entries rank alike give bit-identical AP (drm at t=0 == old/old)
    ap = (precision * rel_live).cumsum(1)[:, -1] / n_relevant[:, None]  # NaN: no relevant
    first = torch.where(rel_live, rank, torch.iinfo(torch.int64).max).amin(1)
    first = torch.where(n_rel_entries[:, None] > 0, first, torch.iinfo(torch.int64).max)
    return ap.T, first.T


def average_precision(relevance: np.ndarray) -> float:
    """AP of one ranking given its relevance flags in rank order; NaN if none is relevant."""
    relevance = np.asarray(relevance, dtype=bool)
    if not relevance.any():
        return float("nan")
    ranks = np.flatnonzero(relevance) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def reference_curve(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor | np.ndarray,
    order: np.ndarray,
    steps: int = 20,
    topk: tuple[int, ...] = (1, 5),
) -> Curve:
    """The definition, written plainly: at every step, sort every query's merged ranking.

    Same result as :func:`evaluate_curve` (up to float rounding); ``S + 1`` times slower.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    n = parts.gallery_size
    item_step = backfill_steps(np.asarray(order), steps)
    ap = np.full((steps + 1, n), np.nan)
    first = np.full((steps + 1, n), np.iinfo(np.int64).max)
    for k in range(steps + 1):
        for start in range(0, n, 1024):
            q = torch.arange(start, min(n, start + 1024))
            d = mixed_distances(parts, item_step <= k, q)
            d[torch.arange(len(q)), q] = float("inf")
            ranking = torch.sort(d, dim=1, stable=True).indices[:, :-1]  # self is last
            relevant = (labels[ranking] == labels[q][:, None]).numpy()
            for row, qi in enumerate(q.tolist()):
                ap[k, qi] = average_precision(relevant[row])
                if relevant[row].any():
                    first[k, qi] = np.argmax(relevant[row]) + 1
    counted = ~np.isnan(ap[0])
    hits = {kk: (first <= kk) & counted for kk in sorted({1, *topk})}
    return Curve(
        fractions=fractions(steps),
        mAP=ap[:, counted].mean(1),
        cmc={kk: h[:, counted].mean(1) for kk, h in hits.items()},
        query_ap=ap,
        top1_hits=hits[1],
    )


def auc(curve_values: np.ndarray) -> float:
    """Area under a backfilling curve: the mean of its equally spaced points, ends included."""
    return float(np.mean(curve_values))


def relative_gain(value: float, old_old: float, new_new: float) -> float:
    """``(value - M(old/old)) / (M(new/new) - M(old/old))`` in percent."""
    if new_new == old_old:
        raise ValueError("new/new equals old/old: the upgrade has no gain to share")
    return 100.0 * (value - old_old) / (new_new - old_old)


def negative_flip_rate(reference_top1: np.ndarray, top1_hits: np.ndarray) -> float:
    """Mean over the curve of the share of queries right at top-1 under the reference
    (old/old: ``(Q,)``) and wrong at step k (``top1_hits (S + 1, Q)``)."""
    return float((reference_top1[None] & ~top1_hits).mean())


def update_gain(cross: float, old_old: float, new_new: float) -> float:
    """BCT's update gain in percent: ``(M(new, old) - M(old, old)) / (M(new*, new*) - M(old, old))``."""
    return relative_gain(cross, old_old, new_new)


def mean_average_precision(
    queries: torch.Tensor, gallery: torch.Tensor, labels: torch.Tensor | np.ndarray
) -> float:
    """mAP of one space (no backfill): ``queries`` and ``gallery`` hold the same items."""
    parts = TwoPartEmbeddings(queries, gallery, queries, gallery)
    return float(evaluate_curve(parts, labels, np.arange(len(gallery)), steps=1).mAP[0])
