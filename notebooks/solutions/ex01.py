"""Notebook 01, the backfilling problem: solutions.

Exercise 3 (conceptual). The AUC weighs every moment of the backfill alike. When would a
service rather weigh the early fractions more, and what would that change in the ranking of
the methods?

Answer: when the backfill is long (weeks for a large gallery) or may be stopped early
(budget, a further upgrade), the early fractions are where users spend most of their time;
a weight that decays with t (or the mAP at a fixed early t) then matters more than the
mean. It favours the methods that are good at t = 0, the compatible ones (BCT, RACT) and
RT+MC, over DRM and RT, whose curves start at old/old; the no-regret end point, shared by
all online methods, counts for less.
"""

from __future__ import annotations

import numpy as np


def area_under_curve(values: list[float]) -> float:
    """Exercise 1 (implement). The AUC of a curve sampled at the S + 1 equally spaced
    fractions t = 0, 1/S, ..., 1: the mean of the points, ends included (METHOD.md)."""
    return float(np.mean(values))


def relative_gain(auc: float, old_old: float, new_new: float) -> float:
    """Exercise 1 (implement). Where an AUC sits, in percent, between serving the old model
    throughout (0%) and having the new model from the start (100%)."""
    return 100.0 * (auc - old_old) / (new_new - old_old)


def uncertainty_order_hurts_the_naive_mix(results: dict[str, dict]) -> bool:
    """Exercise 2 (predict). Does the naive mixed gallery (``new/old``) do better when the
    items the old model is least sure of are backfilled first (the ``uncertainty`` order)?

    Prediction: no, worse. The new model's queries find relevant items only in the new
    part. A random order moves every class at the same pace; the uncertainty order moves
    first the classes the old model never saw (it is unsure of all of them), so a query of
    a class it did see finds almost none of its relevant items in the new part until late.
    On digits new/old's AUC-mAP falls from 58.8 (random) to 56.1 and its negative flip rate
    rises from 3.9% to 16.4%. ``results`` maps each order to its ``results.json``
    dictionary; returns whether new/old's AUC-mAP is lower in the uncertainty order.
    """
    random, uncertain = (results[o]["methods"]["new/old"] for o in ("random", "uncertainty"))
    return uncertain["auc_mAP"] < random["auc_mAP"]
