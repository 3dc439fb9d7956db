"""Exact retrieval metrics over a whole backfilling curve.

Definitions (METHOD.md section 5):

- Each query ranks the whole gallery by distance, itself excluded (leave-one-out *by
  index*: query ``i`` is gallery item ``i``, even when its two copies were embedded by
  different models). Ties are broken by gallery index, so a ranking is a strict order.
- AP of a query = mean, over its relevant items (same class), of the precision at that
  item's rank; mAP = mean AP over queries. CMC top-k = share of queries with a relevant
  item among the first k (also called recall@k). AP@k = the sum of the precisions at the
  relevant items ranked within the first k, divided by ``min(R, k)`` (R: the query's
  relevant items), so a perfect top-k scores 1; mAP@k = its mean. Queries with no
  relevant item in the gallery are left out of every mean.
- The curve evaluates fractions ``t = k / S``, ``k = 0..S``; AUC is the mean of its points.

:func:`evaluate_curve` is the fast evaluator. For each query it sorts the ``2N`` candidate
entries (every item once with its old-part distance, once with its new-part distance) a
single time. At step ``k`` an item's old entry is live iff the item is not yet backfilled
and its new entry iff it is; the rank of a live relevant entry is one plus the number of
live entries before it. Those counts, for every relevant entry at every step, come from
one histogram of the entries by (join step, part, bucket between consecutive relevant
entries) and two cumulative sums: over steps (an old entry leaves, a new one arrives, when
its item joins) and over buckets. So the whole curve costs about one sort per query. A
one-space rule (both parts the same tensors) does not change during a backfill: one step
is evaluated and repeated. :func:`reference_curve` is the readable definition (re-sort
every ranking at every step); the tests and ``bench/curve_eval.py`` compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .merge import TwoPartEmbeddings, mixed_similarities
from .orders import backfill_steps, fractions

__all__ = [
    "CURVE_FORMAT",
    "MAX_STEPS",
    "auc",
    "class_average_precision",
    "Curve",
    "evaluate_curve",
    "negative_flip_rate",
    "one_space_curve",
    "reference_curve",
    "relative_gain",
    "update_gain",
]

# Bumped whenever the evaluator's output changes, so that stored curves are never reused.
CURVE_FORMAT = 1
_RELEVANT = 1 << 16  # flag bit in the evaluator's per-item code (steps stay below it)
MAX_STEPS = _RELEVANT - 3  # the most curve steps the evaluator can count


@dataclass
class Curve:
    """A metric curve over backfill fractions. Arrays have ``S + 1`` points.

    ``query_ap (S + 1, Q)`` is every query's AP (NaN for left-out queries);
    ``top1_hits (S + 1, Q)`` says, per step and query, whether the top-1 item was
    relevant (``False`` for left-out queries); it feeds :func:`negative_flip_rate`.
    ``map_at {k: (S + 1,)}``: mAP@k, for the ``k`` asked for (none by default).
    """

    fractions: np.ndarray
    mAP: np.ndarray
    cmc: dict[int, np.ndarray]
    query_ap: np.ndarray = field(repr=False)
    top1_hits: np.ndarray = field(repr=False)
    map_at: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def top1(self) -> np.ndarray:
        return self.cmc[1]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The curve as named tensors (storable, read back by :meth:`from_state_dict`)."""
        arrays = {
            "fractions": self.fractions,
            "mAP": self.mAP,
            "query_ap": self.query_ap,
            "top1_hits": self.top1_hits,
            **{f"cmc{k}": v for k, v in self.cmc.items()},
            **{f"map_at{k}": v for k, v in self.map_at.items()},
        }
        return {name: torch.from_numpy(np.asarray(a)) for name, a in arrays.items()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> Curve:
        """The curve that :meth:`state_dict` described."""
        arrays = {name: t.numpy() for name, t in state.items()}
        cmc = {int(n[3:]): arrays.pop(n) for n in list(arrays) if n.startswith("cmc")}
        map_at = {int(n[6:]): arrays.pop(n) for n in list(arrays) if n.startswith("map_at")}
        return cls(cmc=cmc, map_at=map_at, **arrays)


def evaluate_curve(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor | np.ndarray,
    order: np.ndarray,
    steps: int = 20,
    topk: tuple[int, ...] = (1, 5),
    chunk_entries: int = 1 << 22,
    map_at: tuple[int, ...] = (),
) -> Curve:
    """mAP and CMC top-k of a merge rule at every fraction of a backfill.

    ``parts``: the rule's embeddings, queries = gallery (``Q == N``, leave-one-out).
    ``labels (N,)``: class of every gallery item. ``order (N,)``: backfill order.
    ``map_at``: the ``k`` of mAP@k to compute as well (``Curve.map_at``).
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
    if n < 2:
        raise ValueError(f"a gallery of {n} items has no other item to retrieve; give 2 or more")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps {steps}: give an integer from 1 to {MAX_STEPS}")
    order = np.asarray(order)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(
            f"order must be a permutation of 0..{n - 1} (each gallery item once), got "
            f"shape {order.shape}"
        )
    topk = tuple(sorted({1, *topk}))
    # in one space nothing changes during the backfill: one step is evaluated (its items
    # get one entry each) and repeated
    one_space = parts.one_space
    if one_space:
        item_step = torch.ones(n, dtype=torch.int64)
    else:
        item_step = torch.from_numpy(backfill_steps(order, steps))
    evaluated = 0 if one_space else steps
    chunk = max(1, chunk_entries // (2 * n))
    ap = torch.full((1 + len(map_at), evaluated + 1, n), float("nan"), dtype=torch.float64)
    first_rank = torch.zeros((evaluated + 1, n), dtype=torch.int64)
    for start in range(0, n, chunk):
        q = torch.arange(start, min(n, start + chunk))
        ap[:, :, q], first_rank[:, q] = _evaluate_chunk(
            parts, labels, item_step, q, evaluated, one_space, map_at
        )
    if one_space:
        ap = ap.expand(-1, steps + 1, n).clone()
        first_rank = first_rank.expand(steps + 1, n).clone()
    counted = ~torch.isnan(ap[0, 0])
    if not counted.any():
        raise ValueError("no query has a relevant item in the gallery: every class has one item")
    hits = {k: ((first_rank <= k) & counted).double() for k in topk}
    return Curve(
        fractions=fractions(steps),
        mAP=ap[0][:, counted].mean(1).numpy(),
        cmc={k: h[:, counted].mean(1).numpy() for k, h in hits.items()},
        query_ap=ap[0].numpy(),
        top1_hits=hits[1].bool().numpy(),
        map_at={k: a[:, counted].mean(1).numpy() for k, a in zip(map_at, ap[1:], strict=True)},
    )


def _evaluate_chunk(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor,
    item_step: torch.Tensor,
    q: torch.Tensor,
    steps: int,
    one_space: bool,
    map_at: tuple[int, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """AP, then AP@k for each k of ``map_at`` ``(1 + len(map_at), S+1, B)``, and the rank
    of the first relevant item ``(S+1, B)`` for queries ``q``.

    ``item_step (N,)``: the step at which each item joins the new part (1..S, or S+1 for
    never). ``one_space``: only the old part is ranked, one entry per item (``steps`` 0).
    """
    b, n = len(q), parts.gallery_size
    sims = [parts.query_old[q] @ parts.gallery_old.T]
    if not one_space:
        sims.append(parts.query_new[q] @ parts.gallery_new.T)
    n_parts = len(sims)
    # per (query, item) code, looked up once per sorted entry: the item's join step (1..S+1;
    # S+2 for the query itself, whose bin is dropped), plus _RELEVANT for the query's class
    dropped = steps + 2
    code = item_step.expand(b, n).clone()
    code[torch.arange(b), q] = dropped
    code += _RELEVANT * ((labels[None] == labels[q][:, None]) & (code < dropped))
    # rank by similarity, highest first: the same order as d = 2 - 2<q, g>, ascending.
    # Entry P*j + p is item j in part p (0 old, 1 new); the stable sort breaks ties by index
    sim = torch.stack(sims, dim=2).view(b, n_parts * n)
    del sims
    entry = torch.sort(sim, dim=1, descending=True, stable=True).indices
    del sim
    is_new = entry % n_parts
    looked_up = torch.gather(code, 1, entry // n_parts)
    del entry
    relevant = looked_up >= _RELEVANT
    join = looked_up & (_RELEVANT - 1)
    del looked_up
    # bucket of an entry = number of relevant entries at or before it: relevant entry i
    # (1-based, in rank order) opens bucket i, so the entries before it fill buckets < i
    bucket = relevant.cumsum(1)
    n_rel_entries = bucket[:, -1]  # one entry per relevant item and part
    width = int(n_rel_entries.max()) + 1
    if width == 1:  # no query of this chunk has a relevant item
        never = torch.full((steps + 1, b), torch.iinfo(torch.int64).max)
        nan = torch.full((1 + len(map_at), steps + 1, b), float("nan"), dtype=torch.float64)
        return nan, never
    # histogram of entries by (query, join step, part, bucket): one bincount
    n_join = steps + 3
    key = ((torch.arange(b)[:, None] * n_join + join) * 2 + is_new) * width + bucket
    counts = torch.bincount(key.view(-1), minlength=b * n_join * 2 * width)
    counts = counts.view(b, n_join, 2, width)
    del key
    # live entries of a bucket at step k: old entries join later (> k), new ones by then (<= k)
    # = all its old entries - old entries joined by k + new entries joined by k
    live = counts[:, : steps + 1, 1] - counts[:, : steps + 1, 0]
    live.cumsum_(1)
    live += counts[:, 1:dropped, 0].sum(1, keepdim=True)
    live.cumsum_(2)  # (B, S+1, width): live entries in buckets <= r, i.e. before entry r+1
    del counts
    # the relevant entries themselves, in rank order: part and join step; padding slots get
    # step 0 as old entries, which are never live
    rows, cols = torch.nonzero(relevant, as_tuple=True)
    slot = bucket[rows, cols] - 1
    rel_new = torch.zeros((b, 1, width - 1), dtype=torch.bool)
    rel_step = torch.zeros((b, 1, width - 1), dtype=torch.int64)
    rel_new[rows, 0, slot] = is_new[rows, cols].bool()
    rel_step[rows, 0, slot] = join[rows, cols]
    k = torch.arange(steps + 1)[None, :, None]
    rel_live = (k >= rel_step) == rel_new  # (B, S+1, width-1)
    dead = ~rel_live
    rank = live[:, :, : width - 1]
    rank += 1
    precision = rel_live.cumsum(2).double()
    precision /= rank
    precision.masked_fill_(dead, 0.0)
    n_relevant = (n_rel_entries // n_parts).double()
    # a sequential cumsum, not a pairwise sum: the dead entries add exact zeros, so any two
    # rules whose live entries rank alike give bit-identical AP (drm at t=0 == old/old)
    ap = [precision.cumsum(2)[:, :, -1] / n_relevant[:, None]]  # NaN: no relevant
    for k_max in map_at:
        within = precision.masked_fill(rank > k_max, 0.0).cumsum(2)[:, :, -1]
        ap.append(within / n_relevant.clamp(max=k_max)[:, None])
    first = rank.masked_fill_(dead, torch.iinfo(torch.int64).max).amin(2)
    return torch.stack(ap).transpose(1, 2), first.T


def reference_curve(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor | np.ndarray,
    order: np.ndarray,
    steps: int = 20,
    topk: tuple[int, ...] = (1, 5),
    map_at: tuple[int, ...] = (),
) -> Curve:
    """The definition, written plainly: at every step, sort every query's merged ranking.

    Same result as :func:`evaluate_curve` (up to float rounding); ``S + 1`` sorts per query.
    """
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    n = parts.gallery_size
    item_step = backfill_steps(np.asarray(order), steps)
    ap = torch.full((steps + 1, n), float("nan"), dtype=torch.float64)
    ap_at = torch.full((len(map_at), steps + 1, n), float("nan"), dtype=torch.float64)
    first = torch.full((steps + 1, n), torch.iinfo(torch.int64).max)
    for k in range(steps + 1):
        for start in range(0, n, 512):
            q = torch.arange(start, min(n, start + 512))
            sim = mixed_similarities(parts, item_step <= k, q)  # (B, N), each item by its part
            sim[torch.arange(len(q)), q] = float("-inf")  # leave-one-out: own item ranks last
            ranking = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, :-1]
            relevant = labels[ranking] == labels[q][:, None]  # (B, N - 1) in rank order
            rank = torch.arange(1, n, dtype=torch.float64)
            precision = relevant.cumsum(1) / rank  # precision at every rank
            ap[k, q] = (precision * relevant).sum(1) / relevant.sum(1)  # mean at the relevant
            for i, k_max in enumerate(map_at):
                within = (precision * relevant)[:, :k_max].sum(1)
                ap_at[i, k, q] = within / relevant.sum(1).clamp(max=k_max)
            first[k, q] = torch.where(
                relevant.any(1), relevant.double().argmax(1) + 1, torch.iinfo(torch.int64).max
            )
    counted = ~torch.isnan(ap[0])
    hits = {kk: (first <= kk) & counted for kk in sorted({1, *topk})}
    return Curve(
        fractions=fractions(steps),
        mAP=ap[:, counted].mean(1).numpy(),
        cmc={kk: h[:, counted].double().mean(1).numpy() for kk, h in hits.items()},
        query_ap=ap.numpy(),
        top1_hits=hits[1].numpy(),
        map_at={
            k_max: a[:, counted].mean(1).numpy() for k_max, a in zip(map_at, ap_at, strict=True)
        },
    )


def auc(curve_values: np.ndarray) -> float:
    """Area under a backfilling curve: the mean of its equally spaced points, ends included."""
    return float(np.mean(curve_values))  # (S + 1,) -> the FCT/FastFill AUC


def relative_gain(value: float, old_old: float, new_new: float) -> float:
    """``(value - M(old/old)) / (M(new/new) - M(old/old))`` in percent."""
    if new_new == old_old:
        raise ValueError("new/new equals old/old: the upgrade has no gain to share")
    return 100.0 * (value - old_old) / (new_new - old_old)  # 0: no better than old/old


def negative_flip_rate(reference_top1: np.ndarray, top1_hits: np.ndarray) -> float:
    """Mean over the curve of the share of queries right at top-1 under the reference
    (old/old: ``(Q,)``) and wrong at step k (``top1_hits (S + 1, Q)``)."""
    return float((reference_top1[None] & ~top1_hits).mean())  # right before, wrong at step k


def update_gain(cross: float, old_old: float, new_new: float) -> float:
    """BCT's update gain in percent:
    ``(M(new, old) - M(old, old)) / (M(new*, new*) - M(old, old))``."""
    return relative_gain(cross, old_old, new_new)


def one_space_curve(
    queries: torch.Tensor, gallery: torch.Tensor, labels: torch.Tensor | np.ndarray
) -> Curve:
    """The single point of one space (no backfill): ``queries`` and ``gallery`` hold the same
    items. Its ``query_ap[0]`` feeds :func:`class_average_precision`."""
    parts = TwoPartEmbeddings(queries, gallery, queries, gallery)
    return evaluate_curve(parts, labels, np.arange(len(gallery)), steps=1)


def class_average_precision(
    query_ap: np.ndarray, labels: torch.Tensor | np.ndarray
) -> dict[int, float]:
    """``{class: mAP of that class's queries}`` from per-query APs ``(Q,)`` (NaN: left out),
    e.g. ``one_space_curve(...).query_ap[0]``.

    Shows *where* a cross-model mAP is won or lost, e.g. on the classes the old model saw
    against those it never saw.
    """
    labels = np.asarray(labels)
    return {int(c): float(np.nanmean(query_ap[labels == c])) for c in np.unique(labels)}
