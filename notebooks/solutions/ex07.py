"""Notebook 07, the backfill explorer: solutions.

Exercise 3 (conceptual). At t = 0 and at t = 1 the explorer's distance plot shows one part
only, and every online method ranks well there. Why does the merge need more from the
distances in between?

Answer: with one part, only the order *within* that part matters, and each model orders
its own space well (old/old at t = 0, new/new at t = 1). In between, the merge compares a
distance of one part with a distance of the other: it needs the two parts' relevant
distances below both parts' irrelevant ones, a property of the two distributions together
(calibration) that neither model was trained for; that is what the plot shows failing for
DRM and RT and what RT+MC improves.
"""

from __future__ import annotations

import numpy as np

from backfill_lib import Experiment, backfilled_mask, rank_gallery


def negative_flip_rate(reference_top1: np.ndarray, top1_hits: np.ndarray) -> float:
    """Exercise 1 (implement). The negative flip rate of a curve: over every step k and
    query q, the share of (k, q) where q's first result was right under the old model
    (``reference_top1 (Q,)`` bool, old/old) and is wrong at step k (``top1_hits (S+1, Q)``
    bool). A user who saw a right answer yesterday and a wrong one today counts once per
    step."""
    flips = [(reference_top1 & ~hits).mean() for hits in top1_hits]
    return float(np.mean(flips))


def new_share_of_the_strip(
    experiment: Experiment, method: str, fraction: float, k: int = 8
) -> float:
    """Exercise 2 (predict). In the explorer at t = 50% (random order), which method's strip
    (its top 8) holds the most items from the new part: DRM, RT or RT+MC? And is it more or
    less than 50%, the new part's share of the gallery?

    Prediction: RT+MC, with about two thirds (digits: 68%; DRM 43%, RT 35%). The new part
    holds the better embeddings, so a calibrated merge should rank its relevant items
    first more often than their share. RT's psi is trained to *land on* the old embeddings,
    so psi(q) sits closer to old items than q to new ones, and the old part wins too often
    (below 50%); the metric-compatible loss puts both parts on one scale. Returns the mean
    share of new-part items in the leave-one-out top ``k`` of every query.
    """
    mask = backfilled_mask(experiment.order("random"), fraction)
    ids, _ = rank_gallery(experiment.parts(method), mask, k, exclude_self=True)
    return float(mask[ids.numpy()].mean())
