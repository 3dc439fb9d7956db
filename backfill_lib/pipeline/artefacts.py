"""The artefact store: every trained model, embedding table, fitted transformation and curve of
one experiment, each built once and cached on disk.

Each artefact is keyed by what determines it (see :mod:`backfill_lib.storage`): a model by
its training data (:meth:`~backfill_lib.data.splits.ExperimentData.identity`), its
:class:`~backfill_lib.training.trainer.TrainConfig`, its role and, for a compatible model,
its loss options and the old model's key; embeddings by the model's key and the image set;
a transformation by the old and new models' keys and its
:class:`~backfill_lib.core.transformation.TransformConfig`; a curve by the *content* of the
embeddings, labels and order it was computed from. So a second run loads everything, an
interrupted one resumes, and any change rebuilds exactly what it affects.

The store builds one artefact when asked, from the layers below (data, methods, training);
in which order they are built is the experiment's stages (:mod:`.experiment`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.metrics import CURVE_FORMAT, Curve
from ..core.transformation import Transformation
from ..data.dataset import Images
from ..data.splits import ExperimentData
from ..methods.registry import CompatibleTraining, get_method, method_names
from ..models.embedding import EmbeddingModel
from ..storage import config_key, content_key, load_derived, save_torch
from ..training import distributed
from ..training.checkpoints import Trained, checkpoint_path, train_or_load
from ..training.embedding import embed
from ..training.objectives import ClassifierObjective, CompatibleObjective
from ..training.trainer import TrainConfig
from ..training.transformation import fit_transformation
from .config import ExperimentConfig

__all__ = ["ArtefactStore"]

SPLITS = ("test", "train", "labelled-test")


class ArtefactStore:
    """Models, embeddings, transformations and curves of one experiment, cached on disk.

    ``config`` says how each is made; ``data`` which images it is made from.
    """

    def __init__(self, config: ExperimentConfig, data: ExperimentData, cache_dir: Path) -> None:
        self.config, self.data, self.cache_dir = config, data, cache_dir
        self._models: dict[str, EmbeddingModel] = {}
        self._keys: dict[str, str] = {}
        self._embeddings: dict[str, torch.Tensor] = {}
        self._transformations: dict[str, Transformation] = {}

    # models ----------------------------------------------------------------------------

    def model(self, name: str) -> EmbeddingModel:
        """``old``, ``new`` (independent), or a compatible method's new model, trained or
        loaded. Says which: a model trained here reports its accuracy, a loaded one its file."""
        if name not in self._models:
            trained = self._train(name)
            self._models[name] = trained.model
            if distributed.is_main():  # under torchrun, one rank speaks
                tqdm.write(
                    f"{name}: trained; {self.describe_accuracy(name)}"
                    if trained.trained_here
                    else f"{name}: loaded from {self.checkpoint_path(name)}"
                )
        return self._models[name]

    def model_key(self, name: str) -> str:
        """The cache key of model ``name`` (trains or loads it, and the old model it needs)."""
        self.model(name)
        return self._keys[name]

    def train_compatible(self, method: str) -> EmbeddingModel:
        """Train (or load) a compatible new model against the frozen, *cached* old model.

        Unlike :meth:`model`, this refuses to train the old model on the way: a compatible
        recipe is only meaningful against the old model that built the gallery.
        """
        if method not in method_names("compatible"):
            raise ValueError(
                f"unknown compatible method {method!r}; "
                f"choose one of {', '.join(method_names('compatible'))}"
            )
        if "old" not in self._models and not self.checkpoint_path("old").exists():
            raise FileNotFoundError(
                f"{method} trains against the cached old model, but {self.checkpoint_path('old')} "
                "does not exist: train it first with `backfill train --model old` (same options)"
            )
        return self.model(method)

    def _train_config(self, name: str) -> TrainConfig:
        return self.config.old if name == "old" else self.config.new

    def _cache_config(self, name: str) -> dict:
        """Everything that determines model ``name``: its checkpoint's key."""
        compatible = method_names("compatible")
        if name not in ("old", "new", *compatible):
            raise ValueError(
                f"unknown model {name!r}; choose old, new or one of {', '.join(compatible)}"
            )
        extra = {}
        if name in compatible:
            extra = {"old": self.model_key("old"), "loss": self.config.compatible_losses[name]}
        train = asdict(self._train_config(name))
        return {"role": name, **self.data.identity(name), "train": train, **extra}

    def checkpoint_path(self, name: str) -> Path:
        """Where model ``name``'s checkpoint for this configuration lives (or will)."""
        return checkpoint_path(self.cache_dir, name, self._cache_config(name))

    def _train(self, name: str) -> Trained:
        """Seed, build the model and its objective, then train or load (METHOD.md section 3)."""
        cache_config, train = self._cache_config(name), self._train_config(name)
        self._keys[name] = config_key(cache_config)
        images, labels = self.data.training_data(name)
        against_old = None if name in ("old", "new") else self._compatible_training(name, labels)
        torch.manual_seed(train.seed)  # the same initialisation on every run and every rank
        mean, std = self.data.channel_stats
        model = EmbeddingModel(
            train.arch,
            train.embed_dim,
            self.data.classes(name),
            self.data.dataset.image_shape[0],
            mean,
            std,
            train.classifier_scale,
            # the layout oneDNN and tensor cores run convolutions fastest in (fp32 too:
            # bench/backbones.py); moot for the digits' 8x8 SmallCNN, which keeps NCHW
            channels_last=train.arch != "cnn-small",
        )
        if against_old is None:
            objective: torch.nn.Module = ClassifierObjective(train.label_smoothing)
        else:
            objective = self._compatible_objective(name, against_old, train)
        return train_or_load(
            name, cache_config, model, objective, images, labels, train, self.cache_dir
        )

    def _compatible_training(self, method: str, labels: torch.Tensor) -> CompatibleTraining:
        """What ``method``'s loss reads of the frozen old model (its classifier, its
        embeddings of the new training images)."""
        old = self.model("old")
        if old.embed_dim != self.config.new.embed_dim:
            raise ValueError(
                f"{method} needs equal embedding dims, but the old model has {old.embed_dim} "
                f"and the new config {self.config.new.embed_dim}: set the new embed_dim to "
                f"{old.embed_dim}"
            )
        old_embeddings = self.embeddings("old", "train")
        return CompatibleTraining(old, labels, self.data.split.old_classes, old_embeddings)

    def _compatible_objective(
        self, method: str, training: CompatibleTraining, train: TrainConfig
    ) -> CompatibleObjective:
        """Cross-entropy plus ``weight`` times the registry's compatibility loss of
        ``method``, against the frozen old model."""
        options = dict(self.config.compatible_losses[method])
        weight = options.pop("weight", 1.0)
        make_loss = get_method(method).loss
        assert make_loss is not None  # every compatible method has one (Method checks)
        loss = make_loss(training, options)
        return CompatibleObjective(training.old, loss, weight, train.label_smoothing)

    def describe_accuracy(self, name: str) -> str:
        """``"top-1 93.1% on the 10000 test images of its 10 classes"``."""
        classes = self.model(name).classifier.weight.shape[0]
        known = int((self.data.labelled_test_data[1] < classes).sum())
        split = "validation" if self.data.validation else "test"
        return (
            f"top-1 {100 * self.accuracy(name):.1f}% on the {known} {split} images "
            f"of its {classes} classes"
        )

    def accuracy(self, name: str) -> float:
        """Top-1 accuracy of model ``name``'s classifier on the test images of the classes it
        was trained on (``data.labelled_test_data``; its classes are ``0..C-1``)."""
        labels = self.data.labelled_test_data[1]
        classifier = self.model(name).classifier
        known = labels < classifier.weight.shape[0]
        logits = classifier(self.embeddings(name, "labelled-test")[known])
        return float((logits.argmax(1) == labels[known]).float().mean())

    # embeddings, transformations, curves -------------------------------------------------

    def embeddings(self, name: str, split: str = "test") -> torch.Tensor:
        """Embeddings ``(N, d)`` of model ``name`` on the ``test`` set (the query/gallery set),
        the ``train`` images of the new model's split, or ``labelled-test``
        (``data.labelled_test_data``); cached on disk by model key and, for a model whose
        checkpoint another setting trained, by this setting too."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if split == "labelled-test" and len(self.data.labelled_test_data[1]) == len(
            self.data.test_labels
        ):
            split = "test"  # the query/gallery set is a subset of it: equal size, same images
        key = f"{name}-{self.model_key(name)}-{split}"
        if self.data.training_setting(name) != self.data.setting:
            key += f"-{self.data.setting}"  # a model shared by settings: their image sets differ
        if key not in self._embeddings:
            path = self.cache_dir / "embeddings" / f"{key}.pt"
            emb = load_derived(path)
            if emb is None:
                emb = embed(self.model(name), self._images(split))
                save_torch(emb, path)
            self._embeddings[key] = emb
        return self._embeddings[key]

    def _images(self, split: str) -> Images:
        if split == "test":
            return self.data.test_data[0]
        if split == "train":
            return self.data.training_data("new")[0]
        return self.data.labelled_test_data[0]

    def transformation(
        self, method: str, new_train: torch.Tensor, old_train: torch.Tensor
    ) -> Transformation:
        """The fitted transformation of ``method`` (``rt``: psi by regression; ``rt+mc``:
        regression + metric-compatible), fitted on ``new_train (N, d_n)`` and ``old_train
        (N, d_o)``, the two models' embeddings of the new split's training images
        (``embeddings(name, "train")``)."""
        if get_method(method).transformation is None:
            raise ValueError(f"{method} has no transformation")
        if method not in self._transformations:
            self._transformations[method] = fit_transformation(
                new_train,
                old_train,
                self.data.training_data("new")[1],
                self.config.transformations[method],
                cache_dir=self.cache_dir,
                cache_config={
                    "old": self.model_key("old"),
                    "new": self.model_key(get_method(method).mapped_from),
                },
            )
        return self._transformations[method]

    def curve(
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
