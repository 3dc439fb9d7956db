"""Images left on disk and read as training goes, for datasets that do not fit in memory.

The in-memory path (:mod:`.folders`, :mod:`.cifar`, :mod:`.digits`) decodes a dataset once
into one uint8 tensor: right for 32x32 images, impossible for ImageNet (1.28M images at
224 px, about 190 GB). :class:`ImageFiles` is a ``Dataset`` over the files of an
ImageFolder split: each image is opened, decoded and transformed when a batch asks for it,
in ``DataLoader`` worker processes, so only a few batches are in memory at once. The
transforms are the standard ones for large images, at any size (224, 64, 32): for training
a random resized crop and a horizontal flip; for evaluation a resize to 8/7 of the size and
a centre crop. It indexes like an image tensor (a slice, indices or a mask give the subset),
so an :class:`~.dataset.ImageDataset` holds either. Training from it is
:mod:`backfill_lib.training.files`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import overload

import torch
from torch.utils.data import Dataset

from .images import class_folders, list_images, open_rgb

__all__ = ["ImageFiles"]


class ImageFiles(Dataset):
    """The images of one ImageFolder split, decoded on demand: item ``i`` is
    ``(uint8 image (3, S, S), label)``.

    ``train=True``: ``RandomResizedCrop(S, scale=crop_scale)`` and a random horizontal flip;
    ``train=False``: resize the short side to ``round(S * 8 / 7)``, centre crop ``S``.
    """

    def __init__(
        self,
        items: list[tuple[Path, int]],
        class_names: list[str],
        image_size: int,
        train: bool,
        crop_scale: tuple[float, float] = (0.08, 1.0),
    ) -> None:
        from torchvision.transforms import v2

        if image_size < 1:
            raise ValueError(f"image_size {image_size}: give a positive size in pixels")
        self.items, self.class_names, self.train = items, class_names, train
        self.image_size, self.crop_scale = image_size, crop_scale
        if train:
            steps = [v2.RandomResizedCrop(image_size, scale=crop_scale), v2.RandomHorizontalFlip()]
        else:
            steps = [v2.Resize(round(image_size * 8 / 7)), v2.CenterCrop(image_size)]
        self.transform = v2.Compose([v2.PILToTensor(), *steps])

    @classmethod
    def from_folder(cls, root: str | Path, split: str, image_size: int, train: bool) -> ImageFiles:
        """``root/<split>/<class>/*`` (``train``, ``test`` or ``val``); the classes are the
        folders under ``root/train``, sorted, whatever the split."""
        root = Path(root).expanduser().resolve()
        class_names = class_folders(root / "train")
        return cls(list_images(root / split, class_names), class_names, image_size, train)

    @property
    def labels(self) -> torch.Tensor:
        """``(N,)`` int64: every item's label, without opening a file."""
        return torch.tensor([label for _, label in self.items], dtype=torch.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, 3, S, S)``: what the decoded images would be, like a tensor's shape."""
        return (len(self.items), 3, self.image_size, self.image_size)

    def subset(self, index: slice | torch.Tensor | list[int]) -> ImageFiles:
        """The items at ``index`` (a slice, integer indices or a boolean mask), as the
        images of a tensor would be indexed; nothing is decoded."""
        if isinstance(index, slice):
            items = self.items[index]
        else:
            chosen = torch.as_tensor(index)
            if chosen.dtype == torch.bool:
                chosen = torch.nonzero(chosen).flatten()
            items = [self.items[i] for i in chosen.tolist()]
        return ImageFiles(items, self.class_names, self.image_size, self.train, self.crop_scale)

    def for_evaluation(self) -> ImageFiles:
        """The same files with the evaluation transform (what embeddings are computed on)."""
        return ImageFiles(self.items, self.class_names, self.image_size, False, self.crop_scale)

    def fingerprint(self) -> str:
        """A short hash of the file list: paths, sizes and modification times."""
        digest = hashlib.sha256()
        for file, label in self.items:
            stat = file.stat()
            digest.update(f"{file}|{label}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]

    def channel_stats(self, sample: int = 2000) -> tuple[list[float], list[float]]:
        """Per-channel mean and std in [0, 1] units, from a seeded sample of the images
        (evaluation transform)."""
        files = self.for_evaluation()
        chosen = torch.randperm(len(files), generator=torch.Generator().manual_seed(0))
        batch = torch.stack([files[i][0] for i in chosen[:sample].tolist()])
        x = batch.float().div_(255).transpose(0, 1).flatten(1)
        return x.mean(1).tolist(), x.std(1).clamp_min(1e-3).tolist()

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]: ...

    @overload
    def __getitem__(self, index: slice | torch.Tensor | list[int]) -> ImageFiles: ...

    def __getitem__(
        self, index: int | slice | torch.Tensor | list[int]
    ) -> tuple[torch.Tensor, int] | ImageFiles:
        """Item ``index`` decoded (an int: what a ``DataLoader`` asks for), or the subset at
        ``index`` (anything else: what the library's indexing of image tensors does)."""
        if not isinstance(index, int):
            return self.subset(index)
        file, label = self.items[index]
        return self.transform(open_rgb(file)), label
