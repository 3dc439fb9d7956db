"""An experiment: one dataset and one setting, run as METHOD.md's protocol, stage by stage.

    plan -> train models -> embed -> fit transformations -> evaluate curves -> report

:meth:`Experiment.run` is that sequence, each stage a method that takes the previous
stage's artefacts and returns its own (``backfill demo`` is :meth:`~Experiment.run` plus
:func:`~backfill_lib.reporting.outputs.write_outputs`). Underneath, every artefact is built
once and cached on disk by what determines it (:class:`~.artefacts.ArtefactStore`), so a
second run loads everything, an interrupted one resumes, and a notebook can ask for one
artefact alone (:meth:`~Experiment.model`, :meth:`~Experiment.embeddings`,
:meth:`~Experiment.results`...) from the same cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.embeddings import class_means
from ..core.merge import TwoPartEmbeddings
from ..core.metrics import (
    MAX_STEPS,
    Curve,
    class_average_precision,
    evaluate_curve,
    one_space_curve,
    update_gain,
)
from ..core.orders import ORDER_KINDS, make_order, softmax_entropy
from ..core.statistics import Bootstrap
from ..core.transformation import Transformation, side_information
from ..data.splits import ExperimentData
from ..methods.registry import (
    GalleryEmbeddings,
    get_method,
    method_names,
    side_information_name,
    trained_models,
)
from ..models.embedding import EmbeddingModel
from ..models.flops import forward_flops
from ..storage import default_cache_dir
from .artefacts import ArtefactStore
from .config import ExperimentConfig, check_methods
from .summary import (
    add_intervals,
    bootstrap_curves,
    method_costs,
    results_record,
    summarise_methods,
)

__all__ = ["Embeddings", "Experiment", "Plan", "Report"]


@dataclass(frozen=True)
class Plan:
    """What an experiment builds (stage 1): the ``methods`` to evaluate along each of the
    ``orders``, the ``models`` they need trained (``old``, ``new``, each compatible
    method's) and the ``transformations`` they need fitted (``rt``, ``rt+mc``)."""

    methods: tuple[str, ...]
    models: tuple[str, ...]
    transformations: tuple[str, ...]
    orders: tuple[str, ...]


@dataclass(frozen=True)
class Embeddings:
    """Stage 3's artefacts: each trained model's embeddings of the query/gallery set
    (``test``: ``{name: (N, d)}``) and, for ``old`` and ``new``, of the new model's training
    images (``train``: what the transformations are fitted on)."""

    test: dict[str, torch.Tensor]
    train: dict[str, torch.Tensor]


@dataclass(frozen=True)
class Report:
    """Stage 6's artefacts: one ``results.json`` dictionary per order, and the compatibility
    matrix (``compatibility.json``)."""

    results: list[dict]
    compatibility: dict


class Experiment:
    """One dataset, one setting: its data, its cached artefacts, and the stages that build
    and evaluate them."""

    def __init__(
        self,
        config: ExperimentConfig,
        data_root: str | Path | None = None,
        cache_dir: str | Path | None = None,
        download: bool = False,
    ) -> None:
        self.config = replace(config, methods=check_methods(config.methods))
        if not isinstance(config.steps, int) or not 1 <= config.steps <= MAX_STEPS:
            raise ValueError(f"steps {config.steps!r}: give an integer from 1 to {MAX_STEPS}")
        for order in config.orders:
            if order not in ORDER_KINDS:
                raise ValueError(
                    f"unknown backfill order {order!r}; choose one of {', '.join(ORDER_KINDS)}"
                )
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.data = ExperimentData(
            config.dataset,
            config.setting,
            config.split_seed,
            config.validation,
            data_root,
            self.cache_dir,
            download,
            config.limit_images,
            config.image_size,
        )
        self.artefacts = ArtefactStore(self.config, self.data, self.cache_dir)
        self._one_space_curves: dict[tuple[str, str], Curve] = {}

    # the protocol, stage by stage --------------------------------------------------------

    def run(self) -> Report:
        """Every stage in order, for every method and order of the configuration."""
        plan = self.plan()
        models = self.train_models(plan)  # METHOD.md section 3
        embeddings = self.embed(plan, models)
        transformations = self.fit_transformations(plan, embeddings)  # section 4: psi, rho
        gallery = GalleryEmbeddings(embeddings.test, transformations)
        curves = {order: self.evaluate_curves(plan, gallery, order) for order in plan.orders}
        return self.report(curves)  # section 5

    def plan(self) -> Plan:
        """Stage 1: what the configuration's methods need (the registry says)."""
        methods = self.config.methods
        fitted = tuple(m for m in methods if get_method(m).transformation is not None)
        return Plan(methods, trained_models(methods), fitted, self.config.orders)

    def train_models(self, plan: Plan) -> dict[str, EmbeddingModel]:
        """Stage 2: every model of the plan, trained (or loaded), the old model first."""
        return {name: self.model(name) for name in plan.models}

    def embed(self, plan: Plan, models: dict[str, EmbeddingModel]) -> Embeddings:
        """Stage 3: each model's embeddings of the query/gallery set; when the plan fits a
        transformation, the old model's and each mapped model's (the new one, or a
        compatible one) of the new training images too, and any side-information a forward
        map reads (:meth:`side_information`) of both image sets."""
        mapped = (get_method(m).mapped_from for m in plan.transformations)
        fitted_on = tuple(dict.fromkeys(("old", *mapped))) if plan.transformations else ()
        return Embeddings(
            test={name: self.embeddings(name) for name in models}
            | self._sides(plan.transformations, "test"),
            train={name: self.embeddings(name, "train") for name in fitted_on}
            | self._sides(plan.transformations, "train"),
        )

    def fit_transformations(self, plan: Plan, embeddings: Embeddings) -> dict[str, Transformation]:
        """Stage 4: psi (and rho) of each transformation method of the plan, fitted on
        ``embeddings.train`` (cached by the two models' keys and the method's config)."""
        return {
            m: self.artefacts.transformation(m, *self._fit_inputs(m, embeddings.train))
            for m in plan.transformations
        }

    def _sides(self, methods: tuple[str, ...], split: str) -> dict[str, torch.Tensor]:
        """The side-information the transformations of ``methods`` read (FCT's), of
        ``split``'s images, under the names a gallery carries it by."""
        transformations = self.config.transformations
        sizes = {transformations[m].side_information for m in methods if m in transformations}
        return {side_information_name(s): self.side_information(s, split) for s in sizes if s}

    def _fit_inputs(
        self, method: str, train: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``method``'s map is fitted on, from the training images' embeddings
        ``train``: the mapped model's embeddings, and the old model's (with the
        side-information after them, for a forward map that reads it)."""
        old, size = train["old"], self.config.transformations[method].side_information
        if size:
            old = torch.cat([old, train[side_information_name(size)]], dim=1)  # (N, d_o + s)
        return train[get_method(method).mapped_from], old

    def side_information(self, size: int, split: str = "test") -> torch.Tensor:
        """FCT's side-information (:func:`~backfill_lib.core.transformation.side_information`)
        of the ``test`` images or the new model's ``train`` images, ``(N, C * size**2)``."""
        images = self.data.test_data[0] if split == "test" else self.data.training_data("new")[0]
        if not isinstance(images, torch.Tensor):
            raise ValueError(
                f"{self.config.dataset}: FCT's side-information is computed from images held in "
                "memory, not read from files a batch at a time (stream:); leave fct+side out"
            )
        return side_information(images, size)

    def evaluate_curves(
        self, plan: Plan, gallery: GalleryEmbeddings, order: str
    ) -> dict[str, tuple[TwoPartEmbeddings, Curve]]:
        """Stage 5: each method's merge rule (its two parts) and its curve along ``order``."""
        order_ids = self.order(order)
        evaluated = {}
        for method in tqdm(plan.methods, desc=f"curves ({order})", leave=False):
            parts = get_method(method).parts(gallery)
            evaluated[method] = parts, self._curve(parts, order_ids)
        return evaluated

    def report(self, curves: dict[str, dict[str, tuple[TwoPartEmbeddings, Curve]]]) -> Report:
        """Stage 6: the ``results.json`` of every order, with paired bootstrap intervals
        (METHOD.md section 5b; the orders after the first compared with it), and the
        compatibility matrix."""
        bootstraps = {order: self.bootstrap(evaluated) for order, evaluated in curves.items()}
        first = next(iter(curves))
        results = [
            self.summarise(order, evaluated, bootstraps[order], (first, bootstraps[first]))
            for order, evaluated in curves.items()
        ]
        return Report(results, self.compatibility())

    def bootstrap(self, evaluated: dict[str, tuple[TwoPartEmbeddings, Curve]]) -> Bootstrap:
        """Paired resamples of the queries (seeded by ``order_seed``, so every order of one
        experiment draws the same ones) of each method's per-query AUC-mAP, AUC-top1 and
        final AP, keyed ``"<method>|<metric>"``."""
        return bootstrap_curves(evaluated, self.config.order_seed)

    def summarise(
        self,
        order: str,
        evaluated: dict[str, tuple[TwoPartEmbeddings, Curve]],
        bootstrap: Bootstrap | None = None,
        against: tuple[str, Bootstrap] | None = None,
    ) -> dict:
        """The ``results.json`` dictionary of one order from its evaluated curves: every
        metric of METHOD.md section 5 per method, the models, the configuration. With a
        ``bootstrap`` (:meth:`bootstrap`), each method's intervals and those of the
        difference of every two methods (``differences``); with ``against``, another order
        and its bootstrap, each method's difference from it (``vs_<order>``)."""
        methods = summarise_methods(evaluated)
        for method, costs in method_costs(evaluated, *self.flops(tuple(evaluated))).items():
            methods[method] |= costs
        results = results_record(
            evaluated,
            order,
            dataset=self.data.dataset.name,
            setting=self.config.setting,
            options=self.config.options,
            gallery_size=len(self.data.test_labels),
            methods=methods,
            models=self.model_summary(trained_models(tuple(evaluated))),
            config=asdict(self.config),
        )
        if bootstrap is not None:
            add_intervals(results, bootstrap, against)
        return results

    def flops(self, methods: tuple[str, ...]) -> tuple[dict[str, int], dict[str, int]]:
        """What one pass costs (:func:`~backfill_lib.models.flops.forward_flops`): each
        trained model on one test image, and each fitted map (psi, with rho where learned)
        on one embedding."""
        example = torch.zeros(1, *self.data.test_data[0].shape[1:])  # (1, C, H, W)
        backbones = {
            m: forward_flops(self.model(m).eval(), example) for m in trained_models(methods)
        }
        maps = {}
        for method in methods:
            if get_method(method).transformation is not None:
                fitted = self.transformation(method)
                vector = torch.zeros(1, fitted.psi.new_dim)  # (1, d_in)
                maps[method] = forward_flops(fitted.transform, vector) + forward_flops(
                    fitted.new_head, vector
                )
        return backbones, maps

    def _curve(self, parts: TwoPartEmbeddings, order: np.ndarray) -> Curve:
        """``evaluate_curve`` of a merge rule on the test set along ``order`` (cached)."""
        tensors = (parts.query_old, parts.gallery_old, parts.query_new, parts.gallery_new)
        labels = self.data.test_labels
        return self.artefacts.curve(
            f"{'one-space' if parts.one_space else 'two-part'} {self.config.steps} steps",
            (*tensors, labels, *(() if parts.one_space else (order,))),
            lambda: evaluate_curve(parts, labels, order, self.config.steps),
        )

    # one artefact at a time, from the same cache (what the notebooks use) -----------------

    def model(self, name: str) -> EmbeddingModel:
        """Model ``name`` (``old``, ``new`` or a compatible method's), trained or loaded."""
        return self.artefacts.model(name)

    def embeddings(self, name: str, split: str = "test") -> torch.Tensor:
        """Model ``name``'s embeddings ``(N, d)`` of ``split`` (see ``ArtefactStore``)."""
        return self.artefacts.embeddings(name, split)

    def transformation(self, method: str) -> Transformation:
        """The fitted transformation of ``rt`` or ``rt+mc`` (any transformation method),
        fitted or loaded."""
        names = ("old", get_method(method).mapped_from)
        train = {m: self.embeddings(m, "train") for m in names} | self._sides((method,), "train")
        return self.artefacts.transformation(method, *self._fit_inputs(method, train))

    def parts(self, method: str) -> TwoPartEmbeddings:
        """The merge rule of ``method`` on the test set (the registry's ``parts``), from the
        models and the transformation it needs."""
        entry = get_method(method)
        fitted = {method: self.transformation(method)} if entry.transformation else {}
        models = {m: self.embeddings(m) for m in entry.models} | self._sides((method,), "test")
        return entry.parts(GalleryEmbeddings(models, fitted))

    def order(self, kind: str) -> np.ndarray:
        """The backfill order of the test gallery: ``random``, ``uncertainty`` (the old
        classifier's entropy) or ``fastfill`` (FastFill's h's predicted error)."""
        old = self.embeddings("old")
        if kind == "fastfill":
            uncertainty = self.transformation("fastfill").uncertainty(old)
        else:
            uncertainty = softmax_entropy(self.model("old").classifier(old).detach())
        return make_order(kind, len(old), self.config.order_seed, uncertainty)

    def results(self, order: str) -> dict:
        """The ``results.json`` dictionary for one backfill order, as :meth:`run` writes it
        (stages 1-5 and its part of stage 6, each artefact from the cache when it is there;
        intervals against the configuration's first order when ``order`` is another)."""
        plan = self.plan()
        embeddings = self.embed(plan, self.train_models(plan))
        gallery = GalleryEmbeddings(embeddings.test, self.fit_transformations(plan, embeddings))
        evaluated = self.evaluate_curves(plan, gallery, order)
        bootstrap = self.bootstrap(evaluated)
        first = plan.orders[0] if plan.orders else order
        if first != order:
            against = (first, self.bootstrap(self.evaluate_curves(plan, gallery, first)))
        else:
            against = (first, bootstrap)
        return self.summarise(order, evaluated, bootstrap, against)

    def classifier_alignment(self, name: str = "old") -> dict[int, float]:
        """``{class: cosine}`` between each classifier row of model ``name`` and the mean of
        its own embeddings of that class's training images (the new model's split).

        BCT reads the old model through these rows: a row is a good old-space query only
        where it points at its class mean (close to 1); see ``CosineClassifier``.
        """
        rows = F.normalize(self.model(name).classifier.weight.detach(), dim=1)
        labels = self.data.training_data("new")[1]
        means = class_means(self.embeddings(name, "train"), labels, len(rows))
        cosines = (rows * F.normalize(means, dim=1)).sum(1)
        return {c: float(cosine) for c, cosine in enumerate(cosines)}

    def model_summary(self, names: tuple[str, ...]) -> dict[str, dict]:
        """``{name: {"arch", "epochs", "classes", "accuracy"}}``: what ``results.json`` records
        of each trained model (accuracy as in ``ArtefactStore.accuracy``)."""
        summary = {}
        for name in names:
            train = self.config.old if name == "old" else self.config.new
            summary[name] = {
                "arch": train.arch,
                "epochs": train.epochs,
                "classes": int(self.model(name).classifier.weight.shape[0]),
                "accuracy": self.artefacts.accuracy(name),
            }
        return summary

    # the compatibility of the new models with the old gallery (BCT's criterion) ------------

    def compatibility(self, models: tuple[str, ...] | None = None) -> dict:
        """The cross-model mAP matrix (rows query model, columns gallery model); per new
        model, the criterion, the update gain and the cost of compatibility; and
        ``by_class`` (:meth:`compatibility_by_class`) with ``old_classes`` and the dataset's
        ``class_names``.

        ``models`` defaults to old, new and the configuration's compatible methods.
        """
        if models is None:
            models = ("old", "new", *self._compatible_methods())
        if models[:2] != ("old", "new"):
            raise ValueError("models must start with 'old', 'new'")
        names = list(models)
        matrix = {
            q: {
                g: self.retrieval_mAP(q, g)
                for g in names
                if self.embeddings(q).shape[1] == self.embeddings(g).shape[1]
            }
            for q in names
        }
        old_old, new_new = matrix["old"]["old"], matrix["new"]["new"]
        summary = {}
        for m in names[1:]:
            cross = matrix[m].get("old")
            summary[m] = {
                "cross_mAP": cross,
                "compatible": cross is not None and cross > old_old,
                "update_gain": None if cross is None else update_gain(cross, old_old, new_new),
                "self_mAP": matrix[m][m],
                "cost_vs_independent_new": matrix[m][m] - new_new,
            }
        return {
            "models": names,
            "matrix": matrix,
            "methods": summary,
            "by_class": self.compatibility_by_class(tuple(names[2:])),
            "old_classes": self.data.split.old_classes,
            "class_names": self.data.dataset.class_names,
        }

    def compatibility_by_class(self, models: tuple[str, ...] | None = None) -> dict:
        """``{method: {class: mAP}}`` of each model's queries against the *old* gallery.

        Keys as in the curves: ``old/old``, ``new/old`` and the compatible methods (default:
        the configuration's). Shows where the criterion is won or lost, e.g. on the classes
        the old model saw (``data.split.old_classes``) against those it never saw.
        """
        if models is None:
            models = self._compatible_methods()
        dim = self.embeddings("old").shape[1]
        names = {"old/old": "old", "new/old": "new", **{m: m for m in models}}
        return {
            key: class_average_precision(
                self._one_space(model, "old").query_ap[0], self.data.test_labels
            )
            for key, model in names.items()
            if self.embeddings(model).shape[1] == dim
        }

    def _compatible_methods(self) -> tuple[str, ...]:
        return tuple(m for m in method_names("compatible") if m in self.config.methods)

    def retrieval_mAP(self, query_model: str, gallery_model: str) -> float:
        """mAP of ``query_model``'s test queries against ``gallery_model``'s test gallery."""
        return float(self._one_space(query_model, gallery_model).mAP[0])

    def _one_space(self, query_model: str, gallery_model: str) -> Curve:
        """``one_space_curve`` of two models' test embeddings, computed once per pair (the
        matrix and the per-class view share it)."""
        pair = (query_model, gallery_model)
        if pair not in self._one_space_curves:
            q, g = self.embeddings(query_model), self.embeddings(gallery_model)
            labels = self.data.test_labels
            self._one_space_curves[pair] = self.artefacts.curve(
                "one-space", (q, g, labels), lambda: one_space_curve(q, g, labels)
            )
        return self._one_space_curves[pair]
