"""The dataset every loader returns, and its on-disk cache.

An :class:`ImageDataset` holds the images and int64 labels of a train and a test split.
The images are ``(N, C, H, W)`` uint8 tensors, or, for a dataset left on disk
(``stream:``), :class:`~.files.ImageFiles` that index alike (:data:`Images`). Loaders decode
once and :func:`cached_dataset` keeps the tensors under ``cache_dir/data``, so an epoch
never touches the disk or a JPEG decoder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..storage import config_key, load_derived, save_torch
from .files import ImageFiles

__all__ = ["ImageDataset", "Images", "cached_dataset"]

Images = torch.Tensor | ImageFiles  # uint8 (N, C, H, W) in memory, or files left on disk


@dataclass
class ImageDataset:
    """A dataset: images ``(N, C, H, W)`` uint8 (or :class:`~.files.ImageFiles`), labels
    ``(N,)`` int64."""

    name: str
    train_images: Images
    train_labels: torch.Tensor
    test_images: Images
    test_labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        """Refuse a dataset that could only be trained on wrongly: fewer than two classes,
        images and labels of different lengths, or labels outside the classes."""
        if len(self.class_names) < 2:
            raise ValueError(
                f"{self.name} has {len(self.class_names)} class(es): retrieval and the "
                "old/new split need at least 2"
            )
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if labels.ndim != 1 or len(images) != len(labels):
                raise ValueError(
                    f"{self.name}: {len(images)} {split} images but {len(labels)} labels; "
                    "each image needs one label"
                )
            if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(
                self.class_names
            ):
                raise ValueError(
                    f"{self.name}: {split} labels from {int(labels.min())} to "
                    f"{int(labels.max())}, outside its {len(self.class_names)} classes "
                    f"(0..{len(self.class_names) - 1})"
                )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def fingerprint(self, splits: tuple[str, ...] = ("train", "test")) -> str:
        """A short content hash of ``splits``: labels, shapes and a strided sample of the
        pixels (of files left on disk, ``stream:``: their list, sizes and modification
        times). A choice made on the validation split keys on ``("train",)`` alone: it never
        reads the test split."""
        parts = [(getattr(self, f"{s}_images"), getattr(self, f"{s}_labels")) for s in splits]
        if all(isinstance(images, ImageFiles) for images, _ in parts):
            return "".join(images.fingerprint() for images, _ in parts)
        digest = hashlib.sha256()
        for x in (tensor for pair in parts for tensor in pair):
            if isinstance(x, ImageFiles):
                raise TypeError(f"{self.name}: a dataset holds image tensors or files, not both")
            digest.update(str(tuple(x.shape)).encode())
            digest.update(x.reshape(-1)[::97].numpy().tobytes())
        return digest.hexdigest()[:16]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, in [0, 1] units (of files left on
        disk: of a sample of them)."""
        if isinstance(self.train_images, ImageFiles):
            return self.train_images.channel_stats()
        x = self.train_images.float().div_(255).transpose(0, 1).flatten(1)
        return x.mean(1).tolist(), x.std(1).clamp_min(1e-3).tolist()


def cached_dataset(
    cache_dir: str | Path | None, kind: str, key: dict, build: Callable[[], ImageDataset]
) -> ImageDataset:
    """``build()`` once, then read the uint8 tensors from ``cache_dir/data/<kind>-<key>.pt``."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / "data" / f"{kind}-{config_key(key)}.pt"
    stored = load_derived(path)
    if stored is not None:
        return ImageDataset(**stored)
    dataset = build()
    save_torch(vars(dataset), path)
    return dataset
