"""Experiments: a configuration in, trained models, curves and ``results.json`` out.

:class:`Experiment` owns one dataset and one setting. Each model, transformation and
embedding table it needs is built on first use and cached on disk under a key derived
from its full configuration (see :mod:`backfill_lib.storage`), so a second run is fast
and an interrupted one resumes. :meth:`Experiment.results` evaluates every requested
method along the backfilling curve and returns the ``results.json`` dictionary; each curve
is stored too, keyed by the content of the embeddings, labels and order it was computed
from, so regenerating figures from a warm cache re-ranks nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import backfill as bf
from .data import ImageDataset, Split, evaluation_set, load_dataset, make_split, validation_holdout
from .losses import AdvBCTLoss, BCTLoss, L2Loss, RACTLoss, class_radii
from .metrics import (
    CURVE_FORMAT,
    Curve,
    auc,
    class_average_precision,
    evaluate_curve,
    negative_flip_rate,
    one_space_curve,
    relative_gain,
    update_gain,
)
from .models import EmbeddingModel
from .storage import config_key, content_key, default_cache_dir, load_derived, save_torch
from .training import (
    ClassifierObjective,
    CompatibleObjective,
    TrainConfig,
    Transformation,
    TransformConfig,
    checkpoint_path,
    embed,
    fit_transformation,
    train_or_load,
)

REFERENCE_METHODS = ("old/old", "new/new")
COMPATIBLE_METHODS = ("bct", "advbct", "ract", "l2")
ONLINE_METHODS = ("new/old", "drm", "rt", "rt+mc")
METHODS = (*REFERENCE_METHODS, "new/old", "drm", *COMPATIBLE_METHODS, "rt", "rt+mc")
PROFILES = ("cpu", "gpu")
COMPATIBLE_LOSS_DEFAULTS = {
    "bct": {"weight": 1.0, "unseen": "synthesise"},
    "advbct": {
        "weight": 1.0,
        "lambda_adv": 0.1,
        "lambda_eb": 1.0,
        "outlier_fence": 1.5,
        "unseen": "synthesise",
    },
    "ract": {"weight": 1.0, "tau": 0.05},
    "l2": {"weight": 1.0},
}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines an experiment's numbers.

    ``compatible_losses``: per compatible method, ``weight`` (lambda of its extra loss) and
    the loss's own options (BCT ``unseen``; AdvBCT ``lambda_adv``, ``lambda_eb``,
    ``outlier_fence`` of its class radii, ``unseen``; RACT ``tau``), chosen on the validation split
    (see docs/choices.md).
    ``split_seed`` seeds the data splits (extended-data's random half, the validation
    holdout); model seeds live in ``old`` / ``new``.
    ``validation=True`` trains on 80% of the training images and uses the other 20% as
    query/gallery: the mode in which every default was chosen (``bench/tune.py``), so that
    no choice ever looks at the reported test split.
    """

    dataset: str = "digits"
    setting: str = "extended-class"
    old: TrainConfig = TrainConfig()
    new: TrainConfig = TrainConfig()
    rt: TransformConfig = TransformConfig()
    rt_mc: TransformConfig = TransformConfig(mc_weight=4.0)
    compatible_losses: dict = field(default_factory=lambda: dict(COMPATIBLE_LOSS_DEFAULTS))
    methods: tuple[str, ...] = METHODS
    orders: tuple[str, ...] = bf.ORDERS
    steps: int = 20
    order_seed: int = 0
    split_seed: int = 0
    validation: bool = False


def default_config(dataset: str = "digits", profile: str = "cpu", **overrides) -> ExperimentConfig:
    """The documented defaults for a dataset and compute profile (choices: docs/choices.md).

    - digits: SmallCNN, 32-d, 30 epochs, cosine classifier scale 2 (seconds on a CPU).
    - 32x32 datasets, ``cpu``: airbench for both models, 64-d, one-cycle SGD with label
      smoothing, bf16 in channels-last (about 1,100 images/s on 2 cores with AMX); the
      metric-compatible loss at tau 0.2, weight 16 (chosen on CIFAR-10's validation split).
    - ``gpu``: ResNet-18 for both models, 128-d, 100 epochs, batch 256.

    The new models use seed 1 and the old seed 0: an independently trained new model must
    not share the old model's initialisation (a shared init makes them partly compatible
    by accident). Keyword ``overrides`` replace fields (e.g. ``setting="open-class"``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    rt_mc = ExperimentConfig.rt_mc
    if dataset == "digits":
        train = TrainConfig(
            arch="cnn-small", embed_dim=32, epochs=30, batch_size=64, lr=0.05, classifier_scale=2.0
        )
    elif profile == "cpu":
        rt_mc = replace(rt_mc, tau=0.2, mc_weight=16.0)
        train = TrainConfig(
            arch="airbench",
            embed_dim=64,
            epochs=16,
            batch_size=256,
            lr=0.2,
            label_smoothing=0.2,
            schedule="one-cycle",
            warmup=0.25,
            precision="bf16",
        )
    else:
        train = TrainConfig(arch="resnet18", embed_dim=128, epochs=100, batch_size=256, lr=0.2)
    return replace(
        ExperimentConfig(dataset=dataset, old=train, new=replace(train, seed=1), rt_mc=rt_mc),
        **overrides,
    )


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``(classes, d)``: the mean of ``embeddings (N, d)`` over each class ``0..classes-1``."""
    return torch.stack([embeddings[labels == c].mean(0) for c in range(classes)])


def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate method names; old/old and new/new are always evaluated (they anchor the gain)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in set(methods) | set(REFERENCE_METHODS))


class Experiment:
    """One dataset, one setting; models, embeddings and curves built lazily and cached."""

    def __init__(
        self,
        config: ExperimentConfig,
        data_root: str | Path | None = None,
        cache_dir: str | Path | None = None,
        download: bool = False,
    ) -> None:
        self.config = replace(config, methods=check_methods(config.methods))
        if not isinstance(config.steps, int) or config.steps < 1:
            raise ValueError(f"steps {config.steps!r}: give an integer of at least 1")
        for order in config.orders:
            if order not in bf.ORDERS:
                raise ValueError(
                    f"unknown backfill order {order!r}; choose one of {', '.join(bf.ORDERS)}"
                )
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._data_args = (data_root, download)
        self._models: dict[str, EmbeddingModel] = {}
        self._keys: dict[str, str] = {}
        self._embeddings: dict[str, torch.Tensor] = {}
        self._transforms: dict[str, Transformation] = {}
        self._one_space_curves: dict[tuple[str, str], Curve] = {}

    @cached_property
    def dataset(self) -> ImageDataset:
        data_root, download = self._data_args
        return load_dataset(self.config.dataset, data_root, self.cache_dir, download)

    @cached_property
    def split(self) -> Split:
        split = make_split(self.dataset, self.config.setting, seed=self.config.split_seed)
        if not self.config.validation:
            return split
        fit = self._validation_indices[0]
        return replace(
            split,
            old_indices=split.old_indices[torch.isin(split.old_indices, fit)],
            new_indices=split.new_indices[torch.isin(split.new_indices, fit)],
        )

    @cached_property
    def _channel_stats(self) -> tuple[list[float], list[float]]:
        return self.dataset.channel_stats()

    @cached_property
    def _validation_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        return validation_holdout(self.dataset.train_labels, 0.2, seed=self.config.split_seed)

    @cached_property
    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Query/gallery images ``(N, C, H, W)`` uint8 and labels ``(N,)`` (the held-out
        validation images in validation mode)."""
        if not self.config.validation:
            return evaluation_set(self.dataset, self.split)
        val = self._validation_indices[1]
        images, labels = self.dataset.train_images[val], self.dataset.train_labels[val]
        keep = torch.isin(labels, torch.tensor(self.split.test_classes))
        return images[keep], labels[keep]

    @cached_property
    def labelled_test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every test image ``(N, C, H, W)`` uint8 and label ``(N,)``, whatever the setting
        tests (the held-out validation images in validation mode): what a model's
        classification accuracy is measured on."""
        if not self.config.validation:
            return self.dataset.test_images, self.dataset.test_labels
        val = self._validation_indices[1]
        return self.dataset.train_images[val], self.dataset.train_labels[val]

    @property
    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The new model's training images and labels (what psi is trained on)."""
        idx = self.split.new_indices
        return self.dataset.train_images[idx], self.dataset.train_labels[idx]

    @property
    def test_labels(self) -> torch.Tensor:
        return self.test_data[1]

    @cached_property
    def _data_id(self) -> dict:
        """What identifies the training data of every model: content, setting, split."""
        return {
            "dataset": self.dataset.name,
            "fingerprint": self.dataset.fingerprint(),
            "setting": self.config.setting,
            "split_seed": self.config.split_seed,
            "validation": self.config.validation,
        }

    def _new_model(self, train: TrainConfig, num_classes: int) -> EmbeddingModel:
        mean, std = self._channel_stats
        return EmbeddingModel(
            train.arch,
            train.embed_dim,
            num_classes,
            self.dataset.image_shape[0],
            mean,
            std,
            train.classifier_scale,
            channels_last=train.precision == "bf16",
        )

    def model(self, name: str) -> EmbeddingModel:
        """``old``, ``new`` (independent), or a compatible method's new model, trained or loaded.

        Says which: a model trained here reports its test accuracy, a loaded one its file."""
        if name not in self._models:
            path = self.checkpoint_path(name)
            trained = not path.exists()
            self._models[name] = self._train(name)
            if trained:
                tqdm.write(f"{name}: trained; {self.describe_accuracy(name)}")
            else:
                tqdm.write(f"{name}: loaded from {path}")
        return self._models[name]

    def describe_accuracy(self, name: str) -> str:
        """``"top-1 93.1% on the 10000 test images of its 10 classes"``."""
        classes = self.model(name).classifier.weight.shape[0]
        known = int((self.labelled_test_data[1] < classes).sum())
        split = "validation" if self.config.validation else "test"
        return (
            f"top-1 {100 * self.accuracy(name):.1f}% on the {known} {split} images "
            f"of its {classes} classes"
        )

    def model_summary(self, names: tuple[str, ...]) -> dict[str, dict]:
        """``{name: {"arch", "epochs", "classes", "accuracy"}}``: what ``results.json`` records
        of each trained model (accuracy as in :meth:`accuracy`)."""
        summary = {}
        for name in names:
            train = self.config.old if name == "old" else self.config.new
            summary[name] = {
                "arch": train.arch,
                "epochs": train.epochs,
                "classes": int(self.model(name).classifier.weight.shape[0]),
                "accuracy": self.accuracy(name),
            }
        return summary

    def model_key(self, name: str) -> str:
        """The cache key of model ``name`` (trains or loads it, and the old model it needs)."""
        self.model(name)
        return self._keys[name]

    def train_compatible(self, method: str) -> EmbeddingModel:
        """Train (or load) a compatible new model against the frozen, *cached* old model.

        Unlike :meth:`model`, this refuses to train the old model on the way: a compatible
        recipe is only meaningful against the old model that built the gallery.
        """
        if method not in COMPATIBLE_METHODS:
            raise ValueError(
                f"unknown compatible method {method!r}; "
                f"choose one of {', '.join(COMPATIBLE_METHODS)}"
            )
        if "old" not in self._models and not self.checkpoint_path("old").exists():
            raise FileNotFoundError(
                f"{method} trains against the cached old model, but {self.checkpoint_path('old')} "
                "does not exist: train it first with `backfill train --model old` (same options)"
            )
        return self.model(method)

    def _spec(self, name: str) -> tuple[dict, TrainConfig, torch.Tensor, int]:
        """``(cache_config, train config, training indices, classes)`` of a model."""
        split = self.split
        if name == "old":
            return (
                self._cache_config(name, self.config.old, {}),
                self.config.old,
                split.old_indices,
                split.old_classes,
            )
        if name == "new" or name in COMPATIBLE_METHODS:
            extra = {}
            if name != "new":
                extra = {"old": self.model_key("old"), "loss": self.config.compatible_losses[name]}
            train = self.config.new
            return (
                self._cache_config(name, train, extra),
                train,
                split.new_indices,
                split.new_classes,
            )
        raise ValueError(
            f"unknown model {name!r}; choose old, new or one of {', '.join(COMPATIBLE_METHODS)}"
        )

    def _cache_config(self, name: str, train: TrainConfig, extra: dict) -> dict:
        return {"role": name, **self._data_id, "train": asdict(train), **extra}

    def checkpoint_path(self, name: str) -> Path:
        """Where model ``name``'s checkpoint for this configuration lives (or will)."""
        return checkpoint_path(self.cache_dir, name, self._spec(name)[0])

    def _train(self, name: str) -> EmbeddingModel:
        cache_config, train, idx, n_cls = self._spec(name)
        self._keys[name] = config_key(cache_config)
        images, labels = self.dataset.train_images[idx], self.dataset.train_labels[idx]

        def build():
            model = self._new_model(train, n_cls)
            if name in ("old", "new"):
                return model, ClassifierObjective(train.label_smoothing)
            old = self.model("old")
            if old.embed_dim != train.embed_dim:
                raise ValueError(
                    f"{name} needs equal embedding dims, but the old model has {old.embed_dim} "
                    f"and the new config {train.embed_dim}: "
                    f"set the new embed_dim to {old.embed_dim}"
                )
            options = dict(self.config.compatible_losses[name])
            weight = options.pop("weight", 1.0)
            loss = self._compatible_loss(name, old, labels, options)
            return model, CompatibleObjective(old, loss, weight, train.label_smoothing)

        model, _, _ = train_or_load(
            name, cache_config, build, images, labels, train, self.cache_dir
        )
        return model

    def _compatible_loss(
        self,
        method: str,
        old: EmbeddingModel,
        labels: torch.Tensor,
        options: dict,
    ) -> torch.nn.Module:
        """The compatibility term; BCT and AdvBCT read the old model's class centres off its
        (cached) embeddings of the new model's training images, whose labels are ``labels``."""
        if method == "l2":
            return L2Loss(**options)
        if method == "ract":
            return RACTLoss(**options)
        old_emb = self.embeddings("old", "train")
        classes = int(labels.max()) + 1
        centres = class_means(old_emb, labels, classes)
        if method == "bct":
            return BCTLoss(
                old.classifier.weight.detach(), old.classifier.scale, synthesised=centres, **options
            )
        fence, unseen = options.pop("outlier_fence"), options.pop("unseen")
        if unseen not in ("skip", "synthesise"):
            raise ValueError(f"AdvBCT's unseen must be 'skip' or 'synthesise', got {unseen!r}")
        bounded = centres if unseen == "synthesise" else centres[: self.split.old_classes]
        return AdvBCTLoss(bounded, class_radii(old_emb, labels, bounded, fence), **options)

    def classifier_alignment(self, name: str = "old") -> dict[int, float]:
        """``{class: cosine}`` between each classifier row of model ``name`` and the mean of
        its own embeddings of that class's training images (the new model's split).

        BCT reads the old model through these rows: a row is a good old-space query only
        where it points at its class mean (close to 1); see ``CosineClassifier``.
        """
        rows = F.normalize(self.model(name).classifier.weight.detach(), dim=1)
        means = class_means(self.embeddings(name, "train"), self.train_data[1], len(rows))
        cosines = (rows * F.normalize(means, dim=1)).sum(1)
        return {c: float(cosine) for c, cosine in enumerate(cosines)}

    def accuracy(self, name: str) -> float:
        """Top-1 accuracy of model ``name``'s classifier on the test images of the classes it
        was trained on (:attr:`labelled_test_data`; its classes are ``0..C-1``)."""
        labels = self.labelled_test_data[1]
        classifier = self.model(name).classifier
        known = labels < classifier.weight.shape[0]
        logits = classifier(self.embeddings(name, "labelled-test")[known])
        return float((logits.argmax(1) == labels[known]).float().mean())

    def embeddings(self, name: str, split: str = "test") -> torch.Tensor:
        """Embeddings ``(N, d)`` of model ``name`` (cached on disk by model key) on the
        ``test`` set (the query/gallery set), the ``train`` images of the new model's split,
        or ``labelled-test`` (:attr:`labelled_test_data`)."""
        splits = {
            "test": lambda: self.test_data[0],
            "train": lambda: self.train_data[0],
            "labelled-test": lambda: self.labelled_test_data[0],
        }
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(splits)}")
        if split == "labelled-test" and len(self.labelled_test_data[1]) == len(self.test_data[1]):
            split = "test"  # the query/gallery set is a subset of it: equal size, same images
        key = f"{name}-{self.model_key(name)}-{split}"
        if key not in self._embeddings:
            path = self.cache_dir / "embeddings" / f"{key}.pt"
            emb = load_derived(path)
            if emb is None:
                emb = embed(self.model(name), splits[split]())
                save_torch(emb, path)
            self._embeddings[key] = emb
        return self._embeddings[key]

    def transformation(self, method: str) -> Transformation:
        """psi for ``rt`` (regression only) or ``rt+mc`` (regression + metric-compatible)."""
        cfg = self.config.rt if method == "rt" else self.config.rt_mc
        if method not in self._transforms:
            self._transforms[method] = fit_transformation(
                self.embeddings("new", "train"),
                self.embeddings("old", "train"),
                self.train_data[1],
                cfg,
                cache_dir=self.cache_dir,
                cache_config={"old": self.model_key("old"), "new": self.model_key("new")},
            )
        return self._transforms[method]

    def parts(self, method: str) -> bf.TwoPartEmbeddings:
        """The merge rule of ``method`` on the test set (see :mod:`backfill_lib.backfill`)."""
        old = self.embeddings("old")
        if method == "old/old":
            return bf.single_space(old, old, old)
        new = self.embeddings("new")
        if method == "new/new":
            return bf.single_space(new, new, new)
        if method == "new/old":
            return bf.single_space(new, old, new)
        if method == "drm":
            return bf.distance_rank_merge(old, old, new, new)
        if method in COMPATIBLE_METHODS:
            compatible = self.embeddings(method)
            return bf.single_space(compatible, old, compatible)
        if method in ("rt", "rt+mc"):
            t = self.transformation(method)
            head = t.new_head(new)
            return bf.reverse_transformation(t.transform(new), old, head, head)
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")

    def order(self, kind: str) -> np.ndarray:
        """The backfill order of the test gallery: ``random`` or ``uncertainty``."""
        old = self.embeddings("old")
        uncertainty = bf.softmax_entropy(self.model("old").classifier(old).detach())
        return bf.make_order(kind, len(old), self.config.order_seed, uncertainty)

    def compatibility(self, models: tuple[str, ...] | None = None) -> dict:
        """The cross-model mAP matrix (rows query model, columns gallery model); per new
        model, the criterion, the update gain and the cost of compatibility; and
        ``by_class`` (:meth:`compatibility_by_class`) with ``old_classes`` and the dataset's
        ``class_names``.

        ``models`` defaults to old, new and the configuration's compatible methods.
        """
        if models is None:
            models = ("old", "new", *[m for m in COMPATIBLE_METHODS if m in self.config.methods])
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
            "old_classes": self.split.old_classes,
            "class_names": self.dataset.class_names,
        }

    def compatibility_by_class(self, models: tuple[str, ...] | None = None) -> dict:
        """``{method: {class: mAP}}`` of each model's queries against the *old* gallery.

        Keys as in the curves: ``old/old``, ``new/old`` and the compatible methods (default:
        the configuration's). Shows where the criterion is won or lost, e.g. on the classes
        the old model saw (``split.old_classes``) against those it never saw.
        """
        if models is None:
            models = tuple(m for m in COMPATIBLE_METHODS if m in self.config.methods)
        dim = self.embeddings("old").shape[1]
        names = {"old/old": "old", "new/old": "new", **{m: m for m in models}}
        return {
            key: class_average_precision(
                self._one_space(model, "old").query_ap[0], self.test_labels
            )
            for key, model in names.items()
            if self.embeddings(model).shape[1] == dim
        }

    def retrieval_mAP(self, query_model: str, gallery_model: str) -> float:
        """mAP of ``query_model``'s test queries against ``gallery_model``'s test gallery."""
        return float(self._one_space(query_model, gallery_model).mAP[0])

    def _one_space(self, query_model: str, gallery_model: str) -> Curve:
        """``one_space_curve`` of two models' test embeddings, computed once per pair (the
        matrix and the per-class view share it)."""
        pair = (query_model, gallery_model)
        if pair not in self._one_space_curves:
            q, g = self.embeddings(query_model), self.embeddings(gallery_model)
            self._one_space_curves[pair] = self._stored_curve(
                "one-space",
                (q, g, self.test_labels),
                lambda: one_space_curve(q, g, self.test_labels),
            )
        return self._one_space_curves[pair]

    def _curve(self, parts: bf.TwoPartEmbeddings, order: np.ndarray) -> Curve:
        """``evaluate_curve`` of a merge rule on the test set along ``order``."""
        tensors = (parts.query_old, parts.gallery_old, parts.query_new, parts.gallery_new)
        return self._stored_curve(
            f"{'one-space' if parts.one_space else 'two-part'} {self.config.steps} steps",
            (*tensors, self.test_labels, *(() if parts.one_space else (order,))),
            lambda: evaluate_curve(parts, self.test_labels, order, self.config.steps),
        )

    def _stored_curve(
        self,
        kind: str,
        inputs: tuple[torch.Tensor | np.ndarray, ...],
        evaluate: Callable[[], Curve],
    ) -> Curve:
        """``evaluate()``, stored under ``curves/`` by the *content* of its ``inputs`` (and
        ``kind``), so a warm re-run reads a curve back instead of ranking every query again,
        and any change to an embedding, label or order evaluates afresh."""
        key = content_key(inputs, {"curve_format": CURVE_FORMAT, "kind": kind})
        path = self.cache_dir / "curves" / f"{key}.pt"
        stored = load_derived(path)
        if stored is not None:
            return Curve.from_state_dict(stored)
        curve = evaluate()
        save_torch(curve.state_dict(), path)
        return curve

    def results(self, order: str) -> dict:
        """The ``results.json`` dictionary for one backfill order."""
        cfg = self.config
        order_ids = self.order(order)
        labels = self.test_labels
        parts = {m: self.parts(m) for m in cfg.methods}
        progress = tqdm(parts.items(), desc=f"curves ({order})", leave=False)
        curves = {m: self._curve(p, order_ids) for m, p in progress}
        old_old = float(curves["old/old"].mAP[0])
        new_new = float(curves["new/new"].mAP[0])
        reference_top1 = curves["old/old"].top1_hits[0]
        methods = {}
        for m, c in curves.items():
            methods[m] = {
                "mAP": c.mAP.tolist(),
                "top1": c.top1.tolist(),
                "top5": c.cmc[5].tolist(),
                "auc_mAP": auc(c.mAP),
                "auc_top1": auc(c.top1),
                "final_mAP": float(c.mAP[-1]),
                "relative_gain": relative_gain(auc(c.mAP), old_old, new_new),
                "negative_flip_rate": negative_flip_rate(reference_top1, c.top1_hits),
                "query_forward_passes": parts[m].forward_passes,
            }
        return {
            "dataset": self.dataset.name,
            "setting": cfg.setting,
            "order": order,
            "fractions": curves["old/old"].fractions.tolist(),
            "gallery_size": len(labels),
            "methods": methods,
            "models": self.model_summary(
                ("old", "new", *[m for m in COMPATIBLE_METHODS if m in cfg.methods])
            ),
            "config": asdict(cfg),
        }


DATASET_ENV, PROFILE_ENV = "BACKFILL_DATASET", "BACKFILL_PROFILE"


def notebook_experiment(
    methods: tuple[str, ...],
    dataset: str | None = None,
    profile: str | None = None,
    data_root: str | Path | None = None,
) -> Experiment:
    """The course notebooks' one setup call: an :class:`Experiment` of ``methods`` with the
    documented defaults (:func:`default_config`), printing what it runs on.

    ``dataset`` defaults to ``$BACKFILL_DATASET``, else the embedded ``"digits"``; ``profile``
    to ``$BACKFILL_PROFILE``, else ``"cpu"``. So one switch runs every notebook on real
    photographs: ``BACKFILL_DATASET=imagefolder:/abs/path/to/cifar10 jupyter lab`` (an
    absolute path: notebooks run in ``notebooks/``). ``data_root`` defaults to
    ``$BACKFILL_DATA_ROOT``; trained models are cached in ``$BACKFILL_CACHE`` (default
    ``~/.cache/backfill_lib``), so a second run loads them.
    """
    dataset = dataset or os.environ.get(DATASET_ENV) or "digits"
    profile = profile or os.environ.get(PROFILE_ENV) or "cpu"
    experiment = Experiment(default_config(dataset, profile, methods=methods), data_root)
    print(
        f"{dataset} ({profile} profile), methods {', '.join(methods)}; cache {experiment.cache_dir}"
    )
    return experiment
