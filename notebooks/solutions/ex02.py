"""Notebook 02, backward-compatible training: solutions.

Exercise 3 (conceptual). BCT's criterion asks M(new, old) > M(old, old). Why does passing
it not settle the question "backfill or not"?

Answer: it says only that the new queries do better against the old gallery than the old
queries did, not how much of the upgrade they deliver: the update gain can be a few percent
(exercise 2). The new model also paid for compatibility in its own quality (its M(new, new)
can fall below an independently trained model's), and every later upgrade inherits the
constraint: compatibility postpones the backfill and makes it cheaper to skip, it does not
replace the gain a backfill with the best new model would give.
"""

from __future__ import annotations

from dataclasses import replace

from backfill_lib import Experiment, default_config


def compatibility_verdict(matrix: dict[str, dict[str, float]], method: str) -> tuple[bool, float]:
    """Exercise 1 (implement). From the cross-model mAP matrix (``matrix[query][gallery]``),
    the compatibility criterion M(new, old) > M(old, old) for ``method``'s new model and its
    update gain (M(new, old) - M(old, old)) / (M(new, new) - M(old, old)) in percent, where
    M(new, new) is the *independent* new model's."""
    cross, old_old, new_new = matrix[method]["old"], matrix["old"]["old"], matrix["new"]["new"]
    return cross > old_old, 100.0 * (cross - old_old) / (new_new - old_old)


def bct_at_weight(weight: float) -> dict:
    """Exercise 2 (predict). Train BCT on digits with its influence-loss weight 10 and 100
    times smaller than the default 1.0: does it stay compatible, and what happens to its
    update gain and to its own mAP?

    Prediction: compatibility fades with the weight. At 0.1 BCT still passes, barely
    (M(bct, old) 62.9 against old/old 61.4), and its update gain falls from 41.6% to 4.0%;
    at 0.01 it fails outright (17.3: its queries no longer live in the old space). Its own
    mAP hardly moves (99.0 at 1.0, 99.3 at 0.1, 99.1 at 0.01): on digits the constraint costs
    the new model nothing even at full weight, so a lighter one has nothing to give back.
    Returns ``compatibility()["methods"]["bct"]`` (``compatible``, ``update_gain``,
    ``self_mAP``, ...) of a BCT model trained with ``weight`` (the default cache).
    """
    config = default_config("digits", methods=("bct",))
    bct = {**config.compatible_losses["bct"], "weight": weight}
    config = replace(config, compatible_losses={**config.compatible_losses, "bct": bct})
    return Experiment(config).compatibility()["methods"]["bct"]
