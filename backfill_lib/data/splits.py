"""Which images each model learns from and which are queried: METHOD.md section 2.

:func:`make_split` gives the old/new training split of a setting; :func:`evaluation_set`
the query/gallery images; :func:`validation_holdout` the 80/20 split of the training images
on which every default was chosen. :class:`ExperimentData` puts them together for one
experiment, in test or validation mode.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch

from .dataset import ImageDataset, Images
from .load import load_dataset

__all__ = [
    "SETTINGS",
    "ExperimentData",
    "Split",
    "evaluation_set",
    "make_split",
    "validation_holdout",
]

SETTINGS = ("extended-class", "extended-data", "open-class")


@dataclass(frozen=True)
class Split:
    """Which training images and classes each model learns from, and which classes are tested.

    ``old_indices`` / ``new_indices`` index the training split; ``old_classes`` is the number
    of classes the old classifier has (labels of old training images are < old_classes);
    ``test_classes`` lists the classes kept in the query/gallery set.
    """

    setting: str
    old_indices: torch.Tensor
    new_indices: torch.Tensor
    old_classes: int
    new_classes: int
    test_classes: tuple[int, ...]


def make_split(dataset: ImageDataset, setting: str = "extended-class", seed: int = 0) -> Split:
    """The old/new training split of METHOD.md section 2.

    - ``extended-class``: old model on the training images of the first half of the classes,
      new model on all classes; every class is tested.
    - ``extended-data``: old model on a seeded random half of the training images of all
      classes; new model on all.
    - ``open-class``: the last 20% of the classes (at least 2) are held out from both models
      and are the only ones tested; old on the first half of the rest, new on all the rest.
    """
    labels = dataset.train_labels
    n_cls = dataset.num_classes
    everything = torch.arange(len(labels))
    if setting == "extended-class":
        old_cls = n_cls // 2
        return Split(
            setting, everything[labels < old_cls], everything, old_cls, n_cls, tuple(range(n_cls))
        )
    if setting == "extended-data":
        gen = torch.Generator().manual_seed(seed)
        half = torch.randperm(len(labels), generator=gen)[: len(labels) // 2].sort().values
        return Split(setting, half, everything, n_cls, n_cls, tuple(range(n_cls)))
    if setting == "open-class":
        held_out = max(2, round(0.2 * n_cls))
        seen = n_cls - held_out
        old_cls = seen // 2
        return Split(
            setting,
            everything[labels < old_cls],
            everything[labels < seen],
            old_cls,
            seen,
            tuple(range(seen, n_cls)),
        )
    raise ValueError(f"unknown setting {setting!r}; choose one of {', '.join(SETTINGS)}")


def evaluation_set(dataset: ImageDataset, split: Split) -> tuple[Images, torch.Tensor]:
    """The query/gallery images and labels of a split (the test images of its test classes)."""
    keep = torch.isin(dataset.test_labels, torch.tensor(split.test_classes))
    return dataset.test_images[keep], dataset.test_labels[keep]


def validation_holdout(
    labels: torch.Tensor, fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split training indices into (fit, validation), stratified by class and seeded.

    Hyperparameters are chosen on the validation part, never on the reported test split.
    """
    gen = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for cls in labels.unique():
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = max(1, round(fraction * len(idx)))
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


class ExperimentData:
    """The images of one experiment: its dataset, the old/new training split of
    ``setting``, and the query/gallery set, each built on first use.

    With ``validation=True`` both models train on 80% of the training images
    (:func:`validation_holdout`, seeded by ``split_seed``) and the other 20% are the
    query/gallery set, so that tuning never looks at the reported test split.

    ``image_size``: the side that folder datasets are resized to. ``limit_images`` (for
    smoke tests) keeps a seeded random subset of at most that many
    images of each model's training set and of the query/gallery and test sets.
    """

    def __init__(
        self,
        dataset: str,
        setting: str,
        split_seed: int = 0,
        validation: bool = False,
        data_root: str | Path | None = None,
        cache_dir: str | Path | None = None,
        download: bool = False,
        limit_images: int | None = None,
        image_size: int = 32,
    ) -> None:
        if limit_images is not None and limit_images < 2:
            raise ValueError(f"limit_images {limit_images}: keep at least 2 images, or None")
        self.name, self.setting = dataset, setting
        self.split_seed, self.validation = split_seed, validation
        self.limit_images, self.image_size = limit_images, image_size
        self._load_args = (data_root, cache_dir, download)

    @cached_property
    def dataset(self) -> ImageDataset:
        data_root, cache_dir, download = self._load_args
        return load_dataset(self.name, data_root, cache_dir, download, self.image_size)

    @cached_property
    def split(self) -> Split:
        return self._split_of(self.setting)

    def _split_of(self, setting: str) -> Split:
        split = make_split(self.dataset, setting, seed=self.split_seed)
        if self.validation:
            fit = self._validation_indices[0]
            split = replace(
                split,
                old_indices=split.old_indices[torch.isin(split.old_indices, fit)],
                new_indices=split.new_indices[torch.isin(split.new_indices, fit)],
            )
        return replace(
            split,
            old_indices=split.old_indices[self._kept(len(split.old_indices))],
            new_indices=split.new_indices[self._kept(len(split.new_indices))],
        )

    def _kept(self, n: int) -> torch.Tensor:
        """Which of ``n`` images ``limit_images`` keeps: all, or a seeded random subset (in
        their original order)."""
        if self.limit_images is None or n <= self.limit_images:
            return torch.arange(n)
        gen = torch.Generator().manual_seed(self.split_seed)
        return torch.randperm(n, generator=gen)[: self.limit_images].sort().values

    @cached_property
    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images (the models' input normalisation)."""
        return self.dataset.channel_stats()

    @cached_property
    def _validation_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        return validation_holdout(self.dataset.train_labels, 0.2, seed=self.split_seed)

    @cached_property
    def test_data(self) -> tuple[Images, torch.Tensor]:
        """Query/gallery images ``(N, C, H, W)`` uint8 and labels ``(N,)`` (the held-out
        validation images in validation mode)."""
        if not self.validation:
            images, labels = evaluation_set(self.dataset, self.split)
        else:
            val = self._validation_indices[1]
            images, labels = self.dataset.train_images[val], self.dataset.train_labels[val]
            keep = torch.isin(labels, torch.tensor(self.split.test_classes))
            images, labels = images[keep], labels[keep]
        kept = self._kept(len(labels))
        return images[kept], labels[kept]

    @property
    def test_labels(self) -> torch.Tensor:
        """``(N,)``: the labels of the query/gallery set."""
        return self.test_data[1]

    @cached_property
    def labelled_test_data(self) -> tuple[Images, torch.Tensor]:
        """Every test image ``(N, C, H, W)`` uint8 and label ``(N,)``, whatever the setting
        tests (the held-out validation images in validation mode): what a model's
        classification accuracy is measured on."""
        if not self.validation:
            images, labels = self.dataset.test_images, self.dataset.test_labels
        else:
            val = self._validation_indices[1]
            images, labels = self.dataset.train_images[val], self.dataset.train_labels[val]
        kept = self._kept(len(labels))
        return images[kept], labels[kept]

    def training_data(self, model: str) -> tuple[Images, torch.Tensor]:
        """The training images ``(N, C, H, W)`` uint8 and labels ``(N,)`` of the ``old``
        model, or of any new one (``new``: the new split, which psi also trains on)."""
        idx = self.split.old_indices if model == "old" else self.split.new_indices
        return self.dataset.train_images[idx], self.dataset.train_labels[idx]

    def classes(self, model: str) -> int:
        """How many classes the ``old`` model, or any new one, is trained on."""
        return self.split.old_classes if model == "old" else self.split.new_classes

    def identity(self, model: str) -> dict:
        """What identifies model ``model``'s training data: content, split, and the setting
        (the data part of its cache key). The setting named is :meth:`training_setting`'s, so
        two settings that train a model on the same images share its checkpoint."""
        return {**self._content_identity, "setting": self.training_setting(model)}

    @cached_property
    def _content_identity(self) -> dict:
        return {
            "dataset": self.dataset.name,
            # in validation mode the models never see the test split, not even its hash
            "fingerprint": (
                self.dataset.fingerprint(("train",))
                if self.validation
                else self.dataset.fingerprint()
            ),
            "split_seed": self.split_seed,
            "validation": self.validation,
            # only when set, so that the keys of full runs stay as they were
            **({"limit_images": self.limit_images} if self.limit_images is not None else {}),
            **({"image_size": self.image_size} if self.image_size != 32 else {}),
        }

    def training_setting(self, model: str) -> str:
        """The first of :data:`SETTINGS` whose split trains ``model`` (``old``, or any new one)
        on the same images and classes as this setting does: ``extended-data``'s new model,
        trained on every image of every class, is ``extended-class``'s."""
        return self._training_settings["old" if model == "old" else "new"]

    @cached_property
    def _training_settings(self) -> dict[str, str]:
        def trains(split: Split, model: str) -> tuple[list[int], int]:
            if model == "old":
                return split.old_indices.tolist(), split.old_classes
            return split.new_indices.tolist(), split.new_classes

        splits = [(setting, self._split_of(setting)) for setting in SETTINGS]
        found = {}
        for model in ("old", "new"):
            mine = trains(self.split, model)
            found[model] = next(s for s, split in splits if trains(split, model) == mine)
        return found
