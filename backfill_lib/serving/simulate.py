"""Simulated old/new embedding pairs: the structure of two real models, at any size.

No million-image dataset is available here, so the large-scale runs draw embeddings from a
generative model with the structure that matters to a backfill:

- every item has a class and a latent code ``u = mu_class + item_spread * eps``, shared by
  both models (they embed the same image, so an odd image is odd for both);
- the new model is a linear view of the latent with a little noise of its own,
  ``normalize(u A_n + new_noise * xi)``: it separates the classes well;
- the old model is a distorted, noisier view, ``normalize(tanh(u A_o) + old_noise * zeta)``,
  noisier still (``unseen_noise``) on the classes it never trained on (the first
  ``old_classes`` classes are the ones it saw, as in the extended-class setting);
- so a psi from the new space to the old is learnable (both spaces are functions of ``u``)
  but not exact (the old model's own noise and its tanh).

The class centres and the two views are fixed by ``seed``; :meth:`Simulation.sample` draws
items. :func:`calibrate` fits the three noise levels to real embeddings: the new/new mAP
and the old/old mAP of the seen and of the unseen classes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..core.metrics import class_average_precision, one_space_curve

__all__ = ["Simulation", "SimulatedItems", "calibrate", "simulation_targets"]


class SimulatedItems(NamedTuple):
    """``old (N, old_dim)`` and ``new (N, new_dim)`` unit rows of the same items;
    ``labels (N,)``."""

    old: torch.Tensor
    new: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class Simulation:
    """A generative model of an old and a new embedding model (module docstring)."""

    classes: int = 10
    old_classes: int = 5
    latent_dim: int = 32
    old_dim: int = 64
    new_dim: int = 64
    item_spread: float = 0.5
    new_noise: float = 0.5
    old_noise: float = 1.0
    unseen_noise: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.old_classes <= self.classes or self.classes < 2:
            raise ValueError(
                f"classes {self.classes}, old_classes {self.old_classes}: give at least 2 "
                "classes, of which 0 to all were seen by the old model"
            )
        for name in ("latent_dim", "old_dim", "new_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def sample(self, n: int, seed: int = 1, chunk: int = 1 << 16) -> SimulatedItems:
        """``n`` items, classes as balanced as ``n`` allows, in a shuffled order."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        views = torch.Generator().manual_seed(self.seed)
        centres = torch.randn(self.classes, self.latent_dim, generator=views)
        new_view = torch.randn(self.latent_dim, self.new_dim, generator=views)
        old_view = torch.randn(self.latent_dim, self.old_dim, generator=views)
        new_view /= self.latent_dim**0.5
        old_view /= self.latent_dim**0.5
        items = torch.Generator().manual_seed(seed)
        labels = torch.arange(n) % self.classes
        labels = labels[torch.randperm(n, generator=items)]
        old = torch.empty(n, self.old_dim)
        new = torch.empty(n, self.new_dim)
        for start in range(0, n, chunk):  # bounded temporaries at a million items
            y = labels[start : start + chunk]
            u = centres[y] + self.item_spread * torch.randn(
                len(y), self.latent_dim, generator=items
            )
            noise = torch.where(y < self.old_classes, self.old_noise, self.unseen_noise)
            new_part = u @ new_view + self.new_noise * torch.randn(
                len(y), self.new_dim, generator=items
            )
            old_part = torch.tanh(u @ old_view) + noise[:, None] * torch.randn(
                len(y), self.old_dim, generator=items
            )
            new[start : start + len(y)] = F.normalize(new_part, dim=1)
            old[start : start + len(y)] = F.normalize(old_part, dim=1)
        return SimulatedItems(old, new, labels)


def _class_share_map(embeddings: torch.Tensor, labels: torch.Tensor, classes: list[int]) -> float:
    """One-space mAP of the queries of ``classes`` (all items form the gallery)."""
    if not classes:
        return float("nan")
    query_ap = one_space_curve(embeddings, embeddings, labels).query_ap[0]
    per_class = class_average_precision(query_ap, labels)
    counts = torch.bincount(labels)
    weights = [float(counts[c]) for c in classes]
    return float(np.average([per_class[c] for c in classes], weights=weights))


def _target(items: SimulatedItems, name: str, old_classes: int) -> float:
    classes = sorted(int(c) for c in torch.unique(items.labels))
    if name == "new":
        return _class_share_map(items.new, items.labels, classes)
    seen = name == "old_seen"
    chosen = [c for c in classes if (c < old_classes) == seen]
    return _class_share_map(items.old, items.labels, chosen)


def simulation_targets(
    old: torch.Tensor, new: torch.Tensor, labels: torch.Tensor, old_classes: int
) -> dict[str, float]:
    """What :func:`calibrate` matches: new/new mAP, and old/old mAP over the queries of the
    classes the old model saw (``label < old_classes``) and of the others (NaN: none), from
    the embeddings ``(N, d)`` of real or simulated items."""
    items = SimulatedItems(old, new, torch.as_tensor(labels))
    return {name: _target(items, name, old_classes) for name in _KNOB}


_KNOB = {"new": "new_noise", "old_seen": "old_noise", "old_unseen": "unseen_noise"}


def calibrate(
    simulation: Simulation,
    targets: dict[str, float],
    n: int,
    rounds: int = 2,
    tolerance: float = 0.002,
) -> Simulation:
    """The simulation whose noise levels reproduce ``targets`` (:func:`simulation_targets`
    of real embeddings) on ``n`` sampled items, by bisection on each level in turn (each
    mAP falls as its noise grows; the old levels interact a little, hence ``rounds``)."""
    for round_ in range(rounds):
        for target, knob in _KNOB.items():
            if np.isnan(targets.get(target, float("nan"))) or (target == "new" and round_):
                continue  # nothing to match; the new level does not depend on the others
            low, high = -6.0, 4.0  # log2 of the noise level
            for _ in range(20):
                middle = (low + high) / 2
                trial = replace(simulation, **{knob: 2.0**middle})
                reached = _target(trial.sample(n), target, trial.old_classes)
                if abs(reached - targets[target]) < tolerance:
                    break
                low, high = (middle, high) if reached > targets[target] else (low, middle)
            simulation = replace(simulation, **{knob: 2.0**middle})
    return simulation
