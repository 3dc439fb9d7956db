"""Notebook 08, backfilling at scale: solutions."""

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
