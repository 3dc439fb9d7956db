"""Datasets by name, and batch augmentation.

Every dataset becomes one :class:`~backfill_lib.dataset.ImageDataset` (uint8 tensors held
in memory). Names understood by :func:`load_dataset`:

- ``digits``: scikit-learn's 8x8 digits (ships in its wheel; the embedded default).
- ``cifar10`` / ``cifar100``: torchvision's ``cifar-10-batches-py`` / ``cifar-100-python``
  folders under ``data_root`` (downloaded there when ``download=True`` and online).
- ``imagefolder:PATH``: an ImageFolder tree with ``PATH/train/<class>/*`` and
  ``PATH/test/<class>/*`` (``val/`` is accepted for ``test/``), resized to ``image_size``.
- ``stream:PATH``: an ImageFolder tree (e.g. ImageNet) left on disk: decoded a batch at a
  time by :mod:`backfill_lib.streaming` while training and embedding, never all at once.
- ``tinyimagenet:PATH``: Tiny-ImageNet, or any subset of its classes, from a folder or a
  ``.tar`` of one (see :func:`~backfill_lib.folders.load_tiny_imagenet`), resized to
  ``image_size``.

Which images each model trains on is :mod:`backfill_lib.splits`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .cifar import load_cifar
from .dataset import DATA_ROOT_ENV, DatasetNotFoundError, ImageDataset, cached_dataset
from .folders import load_image_folder, load_tiny_imagenet

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "ImageDataset",
    "augment",
    "load_dataset",
    "load_digits",
]

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
    if name == "digits":
        return cached_dataset(cache_dir, "digits", {"test_fraction": 0.5, "seed": 0}, load_digits)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, data_root, download=download)
    if name.startswith("imagefolder:"):
        return load_image_folder(name.split(":", 1)[1], cache_dir=cache_dir, image_size=image_size)
    if name.startswith("stream:"):
        from .streaming import load_files  # streaming trains, and training imports this module

        return load_files(name.split(":", 1)[1], image_size=image_size)
    if name.startswith("tinyimagenet:"):
        return load_tiny_imagenet(name.split(":", 1)[1], cache_dir=cache_dir, image_size=image_size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_digits(test_fraction: float = 0.5, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits, split once (stratified, seeded) into train and test."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    images_t = torch.from_numpy(images)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(
        name="digits",
        train_images=images_t[idx_train],
        train_labels=labels[idx_train],
        test_images=images_t[idx_test],
        test_labels=labels[idx_test],
        class_names=[str(c) for c in range(10)],
    )


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard small-image augmentation on a uint8 or float batch ``(B, C, H, W)``.

    Random translation by up to H/8 pixels (zero padding, the CIFAR "pad 4 and crop 32"
    recipe) and, for colour images, a random horizontal flip (digits are not flipped).
    """
    b, c, h, w = images.shape
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dev = images.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None]).view(b, 1, h, 1).expand(b, c, h, w)
    cols = (dx[:, None] + torch.arange(w, device=dev)[None]).view(b, 1, 1, w).expand(b, c, h, w)
    batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
    chan = torch.arange(c, device=dev).view(1, c, 1, 1)
    out = padded[batch, chan, rows, cols]
    if c == 3:
        flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
        out[flip] = out[flip].flip(-1)
    return out
