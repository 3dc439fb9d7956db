"""Notebook 09, backfilling at scale: solutions.

Exercise 3 (conceptual). At scale, recall@100 stays high through the whole backfill while
mAP@100 rises from old/old's level to new/new's. Which would you report to a product
team deciding how fast to backfill, and why?

Answer: mAP@100. Recall@100 asks only whether one relevant item made the top 100; with
about a thousand relevant items per class nearly every method and fraction passes, so it
cannot tell the strategies apart. mAP@100 weighs where the relevant items sit within the
top 100, which is what a user scrolling the first page sees and what changes as the gallery
is re-embedded. (Recall@k with a small k, or top-1, would also move.)
"""

from __future__ import annotations

import numpy as np
import torch

from backfill_lib import TopKCurve, TwoPartEmbeddings, topk_curve


def average_precision_at_k(relevant: np.ndarray, relevant_total: int, k: int) -> float:
    """Exercise 1 (implement). AP@k of one query: ``relevant`` says, for its ranking's first
    items (at least k of them), which are relevant; ``relevant_total`` is how many relevant
    items the gallery holds (the query's own left out). The precision at each relevant item
    within the top k, summed, divided by ``min(relevant_total, k)``: the most relevant items
    a top k can hold, so that a perfect top k scores 1."""
    hits = np.asarray(relevant[:k], dtype=bool)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / min(relevant_total, k))


def curve_at_depths(
    parts: TwoPartEmbeddings,
    labels: torch.Tensor,
    order: np.ndarray,
    k: int,
    depths: tuple[int, ...],
) -> dict[int, TopKCurve]:
    """Exercise 2 (predict). ``topk_curve`` with lists as deep as k, or deeper.

    Prediction: the curve does not change at all; ``exact_searches`` grows. The depth is
    only a bet on how often a filtered list will hold enough of its part: the result is
    exact at any depth, because a list that runs short (and whose bound the merged k-th item
    does not beat) sends that query to an exact search of the part. With lists just k deep
    almost every list runs short once a part holds less than all the gallery, so almost
    every (query, step, part) is searched exactly: the same numbers, many times the work.
    """
    return {depth: topk_curve(parts, labels, order, k=k, depth=depth) for depth in depths}
