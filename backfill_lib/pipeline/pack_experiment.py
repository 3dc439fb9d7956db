"""The notebooks' experiment on a pack (:class:`PackExperiment`): what
:class:`~.experiment.Experiment` gives a notebook to read (embeddings, orders, psi, each
method's two parts, ``results.json``), computed from a pack's embeddings of real
photographs (:mod:`.pack`) instead of models trained here. psi is fitted on the pack's
training sample in seconds; curves and intervals are those of the Experiment's code
(:mod:`.summary`), kept in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..core.merge import TwoPartEmbeddings
from ..core.metrics import Curve, evaluate_curve
from ..core.orders import ORDERS, make_order
from ..core.transformation import Transformation, TransformConfig
from ..methods.registry import GalleryEmbeddings, get_method, method_names
from ..training.transformation import fit_transformation
from .pack import Pack, load_pack
from .summary import add_intervals, bootstrap_curves, results_record, summarise_methods

__all__ = ["PackConfig", "PackData", "PackExperiment"]


@dataclass(frozen=True)
class PackConfig:
    """What a :class:`PackExperiment` evaluates: its methods, orders, steps and order seed,
    and where its data came from (the pack's dataset and setting)."""

    dataset: str
    setting: str
    options: str
    methods: tuple[str, ...]
    orders: tuple[str, ...] = ORDERS
    steps: int = 20
    order_seed: int = 0
    transformations: dict[str, TransformConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class PackData:
    """What a notebook reads of an experiment's ``data`` on a pack: the test labels, the
    test images (the thumbnails when pictured, else None) and the dataset's name and class
    names; :meth:`training_data` gives the training sample's labels (its images are not
    packed)."""

    test_labels: torch.Tensor
    test_data: tuple[torch.Tensor | None, torch.Tensor]
    dataset: SimpleNamespace
    train_labels: torch.Tensor

    def training_data(self, model: str = "new") -> tuple[None, torch.Tensor]:
        """``(None, labels (M,))`` of the packed training sample, on which psi is fitted
        (the same images for the old and new model's embeddings)."""
        return None, self.train_labels


class PackExperiment:
    """An experiment's read side on a pack. ``pictured``: only the test images the pack
    has thumbnails of (the explorer's gallery); else every test image (the committed
    figures' gallery). Methods: the references, ``drm``, ``rt``, ``rt+mc`` and any method
    whose models the pack holds (a compatible one packed with ``backfill pack --models``)."""

    def __init__(
        self,
        pack: Pack | str | Path,
        methods: tuple[str, ...] = ("drm", "rt", "rt+mc"),
        pictured: bool = False,
        steps: int = 20,
        order_seed: int = 0,
    ) -> None:
        self.pack = pack if isinstance(pack, Pack) else load_pack(pack)
        for method in methods:
            entry = get_method(method)
            if entry.transformation is not None and entry.transformation.side_information:
                raise ValueError(f"{method} reads side-information from images, which a pack lacks")
            if entry.transformation is not None and entry.mapped_from not in self.pack.train:
                raise ValueError(
                    f"{method} fits psi on the {entry.mapped_from} model's training embeddings, "
                    "which a pack holds for the old and new models only"
                )
            missing = set(entry.models) - set(self.pack.test)
            if missing:
                raise ValueError(
                    f"{method} needs the {', '.join(sorted(missing))} model's embeddings, which "
                    f"this pack lacks (it holds {', '.join(self.pack.test)}): "
                    f"`backfill pack --models {' '.join(sorted(missing))}` packs them"
                )
        meta = self.pack.meta
        registered = {m: get_method(m).transformation for m in method_names()}
        psi = {m: c for m, c in registered.items() if c is not None}  # methods packed since
        psi |= {m: TransformConfig(**c) for m, c in meta["transformations"].items()}
        self.config = PackConfig(
            meta["dataset"],
            meta["setting"],
            meta["options"],
            methods,
            steps=steps,
            order_seed=order_seed,
            transformations=psi,
        )
        rows = self.pack.thumbnail_items if pictured else np.arange(len(self.pack.labels))
        self._rows = torch.from_numpy(rows)
        labels = self.pack.labels[self._rows]
        pictures = torch.from_numpy(self.pack.thumbnails).permute(0, 3, 1, 2) if pictured else None
        self.data = PackData(
            labels,
            (pictures, labels),
            SimpleNamespace(name=meta["dataset"], class_names=meta["class_names"]),
            self.pack.train_labels,
        )
        self._transformations: dict[str, Transformation] = {}
        self._curves: dict[tuple[str, str], tuple[TwoPartEmbeddings, Curve]] = {}

    def embeddings(self, name: str, split: str = "test") -> torch.Tensor:
        """Model ``name``'s embeddings ``(N, d)`` of the test images (``split="test"``) or of
        the training sample (``"train"``: the old and new models)."""
        if split == "train":
            return self.pack.train[name]
        return self.pack.test[name][self._rows]

    def order(self, kind: str) -> np.ndarray:
        """The backfill order of the test gallery: ``random``, ``uncertainty`` (the old
        classifier's entropy, packed) or ``fastfill`` (FastFill's h's predicted error)."""
        if kind == "fastfill":
            uncertainty = self.transformation("fastfill").uncertainty(self.embeddings("old"))
        else:
            uncertainty = self.pack.uncertainty[self._rows]
        return make_order(kind, len(self._rows), self.config.order_seed, uncertainty)

    def transformation(self, method: str) -> Transformation:
        """``rt``'s or ``rt+mc``'s psi, fitted on the pack's training sample (once)."""
        if method not in self._transformations:
            self._transformations[method] = fit_transformation(
                self.pack.train[get_method(method).mapped_from],
                self.pack.train["old"],
                self.pack.train_labels,
                self.config.transformations[method],
            )
        return self._transformations[method]

    def parts(self, method: str) -> TwoPartEmbeddings:
        """The merge rule of ``method`` on the test images (the registry's ``parts``)."""
        entry = get_method(method)
        fitted = {method: self.transformation(method)} if entry.transformation else {}
        models = {m: self.embeddings(m) for m in entry.models}
        return entry.parts(GalleryEmbeddings(models, fitted))

    def results(self, order: str) -> dict:
        """The ``results.json`` dictionary of one order: the references and every method,
        with intervals (against the first order when ``order`` is another)."""
        first, seed = self.config.orders[0], self.config.order_seed
        bootstraps = {o: bootstrap_curves(self._evaluated(o), seed) for o in {first, order}}
        evaluated = self._evaluated(order)
        results = results_record(
            evaluated,
            order,
            dataset=self.config.dataset,
            setting=self.config.setting,
            options=self.config.options,
            gallery_size=len(self._rows),
            methods=summarise_methods(evaluated),
            models={m: self.pack.meta["models"][m] for m in self.pack.test},
            config={"pack": self.pack.meta["command"], "steps": self.config.steps},
        )
        add_intervals(results, bootstraps[order], (first, bootstraps[first]))
        return results

    def _evaluated(self, order: str) -> dict[str, tuple[TwoPartEmbeddings, Curve]]:
        """Each method's parts and curve along ``order`` (the references first), once."""
        methods = tuple(dict.fromkeys(("old/old", "new/new", *self.config.methods)))
        for method in methods:
            if (method, order) not in self._curves:
                parts = self.parts(method)
                labels, order_ids = self.data.test_labels, self.order(order)
                curve = evaluate_curve(parts, labels, order_ids, self.config.steps)
                self._curves[method, order] = parts, curve
        return {m: self._curves[m, order] for m in methods}
