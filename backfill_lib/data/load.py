"""Datasets by name: the one entry point every command and notebook loads images through.

Names understood by :func:`load_dataset`:

- ``digits``: scikit-learn's 8x8 digits (ships in its wheel; the embedded default).
- ``cifar10`` / ``cifar100``: torchvision's ``cifar-10-batches-py`` / ``cifar-100-python``
  folders under ``data_root`` (downloaded there when ``download=True`` and online).
- ``imagefolder:PATH``: an ImageFolder tree with ``PATH/train/<class>/*`` and
  ``PATH/test/<class>/*`` (``val/`` is accepted for ``test/``), resized to ``image_size``.
- ``stream:PATH``: an ImageFolder tree (e.g. ImageNet) left on disk: its images are
  :class:`~.files.ImageFiles`, decoded a batch at a time while training and embedding.
- ``tinyimagenet:PATH``: Tiny-ImageNet, or any subset of its classes, from a folder or a
  ``.tar`` of one (see :func:`~.folders.load_tiny_imagenet`), resized to ``image_size``.

Which images each model trains on is :mod:`.splits`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm

from ..storage import atomic_write
from .cifar import load_cifar
from .dataset import ImageDataset, cached_dataset
from .digits import load_digits
from .files import ImageFiles
from .folders import load_image_folder, load_tiny_imagenet
from .images import DATA_ROOT_ENV, image_dimensions, image_folder_tree, list_images

__all__ = ["DATASETS", "load_dataset", "load_files"]

DATASETS = (
    "digits",
    "cifar10",
    "cifar100",
    "imagefolder:PATH",
    "tinyimagenet:PATH",
    "stream:PATH",
)


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
    image_size: int = 32,
) -> ImageDataset:
    """Load a dataset by name (see the module docstring for the names).

    ``data_root`` defaults to ``$BACKFILL_DATA_ROOT``. With ``cache_dir``, digits and decoded
    ImageFolder trees are cached as uint8 tensors under ``cache_dir/data`` (read once).
    """
    if data_root is None and os.environ.get(DATA_ROOT_ENV):
        data_root = os.environ[DATA_ROOT_ENV]
    scheme, _, path = name.partition(":")
    if name == "digits":
        return cached_dataset(cache_dir, "digits", {"test_fraction": 0.5, "seed": 0}, load_digits)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, data_root, download=download)
    if scheme == "imagefolder" and path:
        return load_image_folder(path, cache_dir=cache_dir, image_size=image_size)
    if scheme == "stream" and path:
        return load_files(path, image_size=image_size, cache_dir=cache_dir)
    if scheme == "tinyimagenet" and path:
        return load_tiny_imagenet(path, cache_dir=cache_dir, image_size=image_size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_files(
    path: str | Path, image_size: int = 32, cache_dir: str | Path | None = None
) -> ImageDataset:
    """``stream:PATH``: an ImageFolder tree (``train/`` and ``test/`` or ``val/``) whose
    images stay on disk: the dataset's images are :class:`~.files.ImageFiles`, decoded a
    batch at a time wherever the library indexes them (training, embedding). Every image's
    header is read first (:func:`_check_headers`), so that a file that is no image, or one
    too large, is named before any training."""
    root, test_name, class_names = image_folder_tree(path, "stream", "stream:~/data/imagenet")
    train = ImageFiles(list_images(root / "train", class_names), class_names, image_size, True)
    test = ImageFiles(list_images(root / test_name, class_names), class_names, image_size, False)
    dataset = ImageDataset(
        name=f"stream:{root.name}",
        train_images=train,
        train_labels=train.labels,
        test_images=test,
        test_labels=test.labels,
        class_names=train.class_names,
    )
    _check_headers(dataset, [*train.items, *test.items], cache_dir)
    return dataset


def _check_headers(
    dataset: ImageDataset, items: list[tuple[Path, int]], cache_dir: str | Path | None
) -> None:
    """Read every image's header (its format and size, :func:`~.images.image_size`), once
    per file list: a marker under ``cache_dir/data`` keyed by the dataset's fingerprint (the
    files' paths, sizes and modification times) skips it on later runs."""
    marker = None
    if cache_dir is not None:
        marker = Path(cache_dir) / "data" / f"checked-{dataset.fingerprint()}"
        if marker.exists():
            return
    for file, _ in tqdm(items, desc=f"checking {dataset.name}", leave=False):
        image_dimensions(file)
    if marker is not None:
        atomic_write(marker, lambda tmp: tmp.write_text(f"{len(items)} images\n"))
