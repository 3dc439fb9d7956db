"""The method registry: every retrieval method the library evaluates, declared once.

A :class:`Method` says what a method is (its ``family``), what it needs trained
(``models``, and a ``transform`` for a reverse transformation), how its two gallery parts
are scored (``parts``, a merge rule of :mod:`backfill_lib.backfill`, which also carries the
forward passes per query), how a compatible method's new model is trained (``loss`` and its
default ``loss_options``) and how it looks in every figure (``label``, ``style``).

``backfill demo``, ``reproduce``, ``results.json``, the plots and the explorer read this
table and nothing else, so adding a method is one loss or transform module plus one
:func:`register` call (see CONTRIBUTING.md and ``tests/test_methods.py``, which adds a toy
method that way).

Families: ``reference`` (old/old, new/new: the curve's two ends, always evaluated),
``baseline`` (new/old: the upgrade with no compatibility), ``compatible`` (a new model
trained with an extra loss against the frozen old model, queried in one space) and
``online`` (two models merged during the backfill: DRM, RT, RT+MC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import backfill as bf
from .losses import AdvBCTLoss, BCTLoss, L2Loss, RACTLoss, class_means, class_radii
from .models import EmbeddingModel

if TYPE_CHECKING:
    from .artefacts import ArtefactStore

__all__ = [
    "FAMILIES",
    "CompatibleTraining",
    "Method",
    "compatible_parts",
    "get_method",
    "method_names",
    "register",
    "trained_models",
    "transformation_parts",
]

FAMILIES = ("reference", "baseline", "compatible", "online")


@dataclass(frozen=True)
class CompatibleTraining:
    """What a compatible method's loss may read when it is built.

    ``old``: the frozen old model. ``labels (N,)``: the labels of the new model's training
    images; ``old_embeddings()``: the old model's embeddings of them ``(N, d)`` (computed, and
    cached, only when a loss asks). ``old_classes``: how many classes the old model saw
    (labels ``0..old_classes-1``).
    """

    old: EmbeddingModel
    labels: torch.Tensor
    old_classes: int
    old_embeddings: Callable[[], torch.Tensor]

    def class_centres(self) -> torch.Tensor:
        """``(C, d)``: the old model's mean embedding of each class of ``labels``."""
        return class_means(self.old_embeddings(), self.labels, int(self.labels.max()) + 1)


@dataclass(frozen=True)
class Method:
    """One retrieval method (see the module docstring for each field's role)."""

    name: str
    family: str
    label: str
    style: dict
    parts: Callable[[ArtefactStore], bf.TwoPartEmbeddings]
    models: tuple[str, ...]
    loss: Callable[[CompatibleTraining, dict], nn.Module] | None = None
    loss_options: dict = field(default_factory=dict)
    transform: str | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r}: choose one of {', '.join(FAMILIES)}")
        if (self.family == "compatible") != (self.loss is not None):
            raise ValueError(f"{self.name}: a compatible method needs a loss, others none")


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (a name may be registered once)."""
    if method.name in _REGISTRY:
        raise ValueError(f"method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The registered method ``name``, or a ValueError listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def method_names(*families: str) -> tuple[str, ...]:
    """Registered method names in registration order, optionally of the given families."""
    return tuple(m.name for m in _REGISTRY.values() if not families or m.family in families)


def trained_models(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The models ``methods`` need, in first-needed order: ``("old", "new", "bct")``."""
    return tuple(dict.fromkeys(model for m in methods for model in get_method(m).models))


def _reference_parts(model: str) -> Callable:
    def parts(store: ArtefactStore) -> bf.TwoPartEmbeddings:
        embeddings = store.embeddings(model)
        return bf.single_space(embeddings, embeddings, embeddings)

    return parts


def _new_old_parts(store: ArtefactStore) -> bf.TwoPartEmbeddings:
    new = store.embeddings("new")
    return bf.single_space(new, store.embeddings("old"), new)


def compatible_parts(name: str) -> Callable:
    """The ``parts`` of a compatible method: its model's query against both gallery parts
    (the old part still holds old embeddings, the new part its own)."""

    def parts(store: ArtefactStore) -> bf.TwoPartEmbeddings:
        compatible = store.embeddings(name)
        return bf.single_space(compatible, store.embeddings("old"), compatible)

    return parts


def _drm_parts(store: ArtefactStore) -> bf.TwoPartEmbeddings:
    old, new = store.embeddings("old"), store.embeddings("new")
    return bf.distance_rank_merge(old, old, new, new)


def transformation_parts(name: str) -> Callable:
    """The ``parts`` of a method with a reverse transformation: ``psi(phi_n(q))`` against the
    old part, ``phi_n(q)`` (through rho, if learned) against the new part."""

    def parts(store: ArtefactStore) -> bf.TwoPartEmbeddings:
        psi, new = store.transformation(name), store.embeddings("new")
        head = psi.new_head(new)
        return bf.reverse_transformation(psi.transform(new), store.embeddings("old"), head, head)

    return parts


def _bct_loss(training: CompatibleTraining, options: dict) -> nn.Module:
    old = training.old.classifier
    centres = training.class_centres()
    return BCTLoss(old.weight.detach(), old.scale, synthesised=centres, **options)


def _advbct_loss(training: CompatibleTraining, options: dict) -> nn.Module:
    options = dict(options)
    fence, unseen = options.pop("outlier_fence"), options.pop("unseen")
    if unseen not in ("skip", "synthesise"):
        raise ValueError(f"AdvBCT's unseen must be 'skip' or 'synthesise', got {unseen!r}")
    centres = training.class_centres()
    bounded = centres if unseen == "synthesise" else centres[: training.old_classes]
    radii = class_radii(training.old_embeddings(), training.labels, bounded, fence)
    return AdvBCTLoss(bounded, radii, **options)


# Okabe and Ito's colour-blind-safe palette. Online methods are solid lines, compatible
# training (the BCT family) dash-dotted with hollow markers, references dashed.
_HOLLOW = {"ls": "-.", "mfc": "white"}
for _method in (
    Method(
        name="old/old",
        family="reference",
        label="old/old (no backfill)",
        style={"color": "#8c8c8c", "ls": "--"},
        parts=_reference_parts("old"),
        models=("old",),
    ),
    Method(
        name="new/new",
        family="reference",
        label="new/new (full backfill)",
        style={"color": "#000000", "ls": "--"},
        parts=_reference_parts("new"),
        models=("new",),
    ),
    Method(
        name="new/old",
        family="baseline",
        label="new/old (incompatible)",
        style={"color": "#D55E00", "ls": ":", "marker": "x"},
        parts=_new_old_parts,
        models=("old", "new"),
    ),
    Method(
        name="drm",
        family="online",
        label="DRM (2 passes)",
        style={"color": "#0072B2", "ls": "-", "marker": "o"},
        parts=_drm_parts,
        models=("old", "new"),
    ),
    Method(
        name="bct",
        family="compatible",
        label="BCT",
        style={"color": "#CC79A7", "marker": "s", **_HOLLOW},
        parts=compatible_parts("bct"),
        models=("old", "bct"),
        loss=_bct_loss,
        loss_options={"weight": 1.0, "unseen": "synthesise"},
    ),
    Method(
        name="advbct",
        family="compatible",
        label="AdvBCT",
        style={"color": "#882255", "marker": "D", **_HOLLOW},
        parts=compatible_parts("advbct"),
        models=("old", "advbct"),
        loss=_advbct_loss,
        loss_options={
            "weight": 1.0,
            "lambda_adv": 0.1,
            "lambda_eb": 1.0,
            "outlier_fence": 1.5,
            "unseen": "synthesise",
        },
    ),
    Method(
        name="ract",
        family="compatible",
        label="RACT (Hot-Refresh)",
        style={"color": "#56B4E9", "marker": "v", **_HOLLOW},
        parts=compatible_parts("ract"),
        models=("old", "ract"),
        loss=lambda training, options: RACTLoss(**options),
        loss_options={"weight": 1.0, "tau": 0.05},
    ),
    Method(
        name="l2",
        family="compatible",
        label="L2",
        style={"color": "#999933", "marker": "^", **_HOLLOW},
        parts=compatible_parts("l2"),
        models=("old", "l2"),
        loss=lambda training, options: L2Loss(**options),
        loss_options={"weight": 1.0},
    ),
    Method(
        name="rt",
        family="online",
        label="RT",
        style={"color": "#E69F00", "ls": "-", "marker": "P"},
        parts=transformation_parts("rt"),
        models=("old", "new"),
        transform="rt",
    ),
    Method(
        name="rt+mc",
        family="online",
        label="RT+MC (Seo et al.)",
        style={"color": "#009E73", "ls": "-", "marker": "*", "lw": 2.6, "ms": 5},
        parts=transformation_parts("rt+mc"),
        models=("old", "new"),
        transform="rt_mc",
    ),
):
    register(_method)
