"""The method registry: what a method is, and the table every other layer reads.

A :class:`Method` says what a method is (its ``family``), which models it needs trained
(``models``), how its two gallery parts are scored (``parts``: a merge rule of
:mod:`backfill_lib.core.merge` applied to :class:`GalleryEmbeddings`, which also carries
the backbone passes per query), how a compatible method's new model is trained (``loss``
and its default ``loss_options``), how a transformation method's psi is fitted
(``transformation``, a :class:`~backfill_lib.core.transformation.TransformConfig`), which of
those options ``backfill tune`` searches and over which values (``search_space``), and how
it looks in every figure (``label``, ``style``).

Each method lives in its own module of this package, beside its loss, and registers itself
there (as timm's models do); this module imports none of them. ``backfill demo``,
``reproduce``, ``results.json``, the plots and the explorer read this table and nothing
else, so adding a method is one module and its :func:`register` call (CONTRIBUTING.md;
``tests/methods/test_registry.py`` adds a toy compatible method and a toy transformation
method that way).

A transformation method's ``mapped_from`` names the model on the new side (``new``, or a
compatible model: RT+MC on top of BCT's new model is a combination of the two families).

Families: ``reference`` (old/old, new/new: the curve's two ends, always evaluated),
``baseline`` (new/old: the upgrade with no compatibility), ``compatible`` (a new model
trained with an extra loss against the frozen old model, queried in one space),
``online`` (two models merged during the backfill: DRM, RT, RT+MC, and RT's closed-form
maps) and ``forward`` (the stored old embeddings mapped into the new space before serving,
one space from then on: FCT).

Every compatibility loss keeps one contract, :class:`CompatibilityLoss`:
``loss(embeddings, labels, ref_emb, progress)``, where ``ref_emb`` is the other (old)
model's embeddings of the same images, as in pytorch-metric-learning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
from torch import nn

from ..core import merge
from ..core.embeddings import class_means
from ..core.transformation import Transformation, TransformConfig
from ..models.embedding import EmbeddingModel

__all__ = [
    "COMPATIBLE_STYLE",
    "COMPATIBLE_WEIGHTS",
    "FAMILIES",
    "CompatibilityLoss",
    "CompatibleTraining",
    "GalleryEmbeddings",
    "Method",
    "compatible_parts",
    "forward_parts",
    "get_method",
    "method_names",
    "register",
    "side_information_name",
    "trained_models",
    "transformed_query_parts",
]

FAMILIES = ("reference", "baseline", "compatible", "online", "forward")

# The weights (lambda) of the extra loss that ``backfill tune`` tries for every compatible
# method: one grid for all, a factor of about 3 apart, so no method's search is wider.
COMPATIBLE_WEIGHTS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# Figures use Okabe and Ito's colour-blind-safe palette: online methods are solid lines,
# references dashed, and compatible training (the BCT family) dash-dotted with hollow markers.
COMPATIBLE_STYLE = {"ls": "-.", "mfc": "white"}


class CompatibilityLoss(Protocol):
    """The contract of every compatible method's loss (an ``nn.Module``).

    ``embeddings (B, d)``: the new model's unit embeddings of a batch; ``labels (B,)``;
    ``ref_emb (B, d_o)``: the frozen old model's embeddings of the same images;
    ``progress``: the share of training done, in [0, 1]. Returns a scalar. The training
    loop passes all four; a loss reads what it needs (a missing ``ref_emb`` it needs is an
    error naming it) and says in its docstring what it leaves unread.
    """

    def __call__(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        progress: float = 0.0,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class CompatibleTraining:
    """What a compatible method's loss may read when it is built.

    ``old``: the frozen old model. ``labels (N,)``: the labels of the new model's training
    images; ``old_embeddings (N, d)``: the old model's embeddings of them. ``old_classes``:
    how many classes the old model saw (labels ``0..old_classes-1``).
    """

    old: EmbeddingModel
    labels: torch.Tensor
    old_classes: int
    old_embeddings: torch.Tensor

    def class_centres(self) -> torch.Tensor:
        """``(C, d)``: the old model's mean embedding of each class of ``labels``."""
        return class_means(self.old_embeddings, self.labels, int(self.labels.max()) + 1)


@dataclass(frozen=True)
class GalleryEmbeddings:
    """What a merge rule reads: the query/gallery set embedded by each trained model
    (``models``: ``{"old": (N, d_o), "new": (N, d_n), "bct": ...}``) and each fitted
    transformation (``transformations``: ``{"rt": Transformation, ...}``)."""

    models: Mapping[str, torch.Tensor]
    transformations: Mapping[str, Transformation] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """One retrieval method (see the module docstring for each field's role)."""

    name: str
    family: str
    label: str
    style: dict
    parts: Callable[[GalleryEmbeddings], merge.TwoPartEmbeddings]
    models: tuple[str, ...]
    loss: Callable[[CompatibleTraining, dict], nn.Module] | None = None
    loss_options: dict = field(default_factory=dict)
    transformation: TransformConfig | None = None
    search_space: dict[str, tuple] = field(default_factory=dict)
    mapped_from: str = "new"  # the model on the new side, whose embeddings psi maps

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r}: choose one of {', '.join(FAMILIES)}")
        if (self.family == "compatible") != (self.loss is not None):
            raise ValueError(f"{self.name}: a compatible method needs a loss, others none")
        options = self.tunable_options()
        unknown = [key for key in self.search_space if key not in options]
        if unknown:
            raise ValueError(
                f"{self.name}: its search space names {', '.join(unknown)}, which are not its "
                f"options ({', '.join(options) or 'none'})"
            )

    def tunable_options(self) -> dict:
        """The options ``backfill tune`` may set: a compatible method's loss options, a
        transformation method's :class:`TransformConfig` fields (with their defaults)."""
        if self.transformation is not None:
            return asdict(self.transformation)
        return dict(self.loss_options)


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


def compatible_parts(name: str) -> Callable[[GalleryEmbeddings], merge.TwoPartEmbeddings]:
    """The ``parts`` of a compatible method: its model's query against both gallery parts
    (the old part still holds old embeddings, the new part its own)."""

    def parts(gallery: GalleryEmbeddings) -> merge.TwoPartEmbeddings:
        compatible = gallery.models[name]  # (N, d): queries and backfilled items
        return merge.single_space(compatible, gallery.models["old"], compatible)

    return parts


def transformed_query_parts(
    name: str, mapped_from: str = "new"
) -> Callable[[GalleryEmbeddings], merge.TwoPartEmbeddings]:
    """The ``parts`` of a method with a transformation: ``psi(phi_n(q))`` against the old
    part, ``phi_n(q)`` (through rho, if learned) against the new part. ``mapped_from``: the
    model that plays the new one (a compatible model, for a combination)."""

    def parts(gallery: GalleryEmbeddings) -> merge.TwoPartEmbeddings:
        fitted, new = gallery.transformations[name], gallery.models[mapped_from]
        head = fitted.new_head(new)  # (N, d_n): rho(phi_n), or phi_n itself
        return merge.transformed_query_merge(
            fitted.transform(new), gallery.models["old"], head, head
        )

    return parts


def side_information_name(size: int) -> str:
    """The name under which a gallery carries its side-information of ``size`` pixels a
    side (:func:`~backfill_lib.core.transformation.side_information`), beside its models."""
    return f"side-{size}px"


def forward_parts(name: str) -> Callable[[GalleryEmbeddings], merge.TwoPartEmbeddings]:
    """The ``parts`` of a forward transformation: the new query ``phi_n(q)`` against one
    space, the old part holding ``h(phi_o(g))`` (the stored old embeddings upgraded by the
    fitted h; with side-information, ``h(phi_o(g), side(g))``) and the new part
    ``phi_n(g)``."""

    def parts(gallery: GalleryEmbeddings) -> merge.TwoPartEmbeddings:
        fitted, stored = gallery.transformations[name], gallery.models["old"]  # (N, d_o)
        if fitted.side_information:  # FCT's side-information, stored beside each item
            side = gallery.models[side_information_name(fitted.side_information)]
            stored = torch.cat([stored, side], dim=1)  # (N, d_o + s)
        upgraded = fitted.transform(stored)  # (N, d_n)
        new = gallery.models["new"]
        return merge.single_space(new, upgraded, new)

    return parts
