"""Backfill orders and the curve's steps: which gallery items are in the new part at t.

An *order* is a permutation of the gallery ids: the sequence in which items are re-embedded
by the new model (METHOD.md section 4). At curve step ``k`` of ``S`` the first
``round(k N / S)`` items of the order are in the new part, the rest in the old part.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "ORDERS",
    "ORDER_KINDS",
    "backfill_steps",
    "backfilled_mask",
    "check_order",
    "fractions",
    "make_order",
    "random_order",
    "softmax_entropy",
    "uncertainty_order",
]

ORDERS = ("random", "uncertainty")  # what every run evaluates unless told otherwise
# ... and every order there is: ``uncertainty`` is the old classifier's entropy, ``fastfill``
# FastFill's learned uncertainty (its h's predicted error), most uncertain first in both
ORDER_KINDS = (*ORDERS, "fastfill")


def random_order(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of ``range(n)``: the order in which items are backfilled."""
    return np.random.default_rng(seed).permutation(n)


def uncertainty_order(uncertainty: np.ndarray | torch.Tensor) -> np.ndarray:
    """Most uncertain first (ties by index). ``uncertainty (N,)``, e.g. :func:`softmax_entropy`."""
    u = np.asarray(uncertainty, dtype=np.float64)  # (N,)
    return np.argsort(-u, kind="stable")  # descending, ties by index


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` per row: ``(N, C) -> (N,)``."""
    logp = torch.log_softmax(logits.double(), dim=1)  # (N, C) log p_c
    return -(logp.exp() * logp).sum(1).float()  # (N,) -sum_c p_c log p_c


def check_order(order: np.ndarray | torch.Tensor | list[int], n: int) -> np.ndarray:
    """Validate a user-given backfill order: a permutation of ``range(n)``."""
    order = np.asarray(order)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"a backfill order must be a permutation of the {n} gallery ids")
    return order.astype(np.int64)


def make_order(
    kind: str, n: int, seed: int = 0, uncertainty: torch.Tensor | None = None
) -> np.ndarray:
    """An order by name: ``random`` (seeded), or ``uncertainty`` / ``fastfill`` (most
    uncertain first: they need ``uncertainty``, the old classifier's entropy or FastFill's
    predicted error)."""
    if kind == "random":
        return random_order(n, seed)
    if kind in ("uncertainty", "fastfill"):
        if uncertainty is None:
            raise ValueError(f"the {kind} order needs each item's uncertainty")
        return uncertainty_order(uncertainty)
    raise ValueError(f"unknown backfill order {kind!r}; choose one of {', '.join(ORDER_KINDS)}")


def fractions(steps: int = 20) -> np.ndarray:
    """The backfilling curve's fractions ``0, 1/S, ..., 1`` (``S + 1`` points)."""
    return np.arange(steps + 1) / steps


def backfill_steps(order: np.ndarray, steps: int = 20) -> np.ndarray:
    """For each gallery item, the first curve step at which it is in the new part.

    At step ``k`` the first ``round(k N / S)`` items of ``order`` are backfilled, so item
    ``order[i]`` joins at the smallest ``k`` with ``round(k N / S) > i``. Shape ``(N,)``.
    """
    n = len(order)
    counts = np.rint(np.arange(steps + 1) * n / steps).astype(np.int64)  # (S+1,) backfilled at k
    step_of_position = np.searchsorted(counts, np.arange(n), side="right")  # (N,) by position
    steps_of_items = np.empty(n, dtype=np.int64)
    steps_of_items[order] = step_of_position  # (N,) by gallery id
    return steps_of_items


def backfilled_mask(order: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean ``(N,)``: which items are in the new part after backfilling ``fraction``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    mask = np.zeros(len(order), dtype=bool)
    mask[order[: int(np.rint(fraction * len(order)))]] = True
    return mask
