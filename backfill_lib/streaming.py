"""Images read from disk as training goes, for datasets that do not fit in memory.

The in-memory path (:mod:`backfill_lib.data`) decodes a dataset once into one uint8 tensor:
right for 32x32 images, impossible for ImageNet (1.28M images at 224 px, about 190 GB).
:class:`ImageFiles` is a ``Dataset`` over the files of an ImageFolder split: each image is
opened, decoded and transformed when a batch asks for it, in ``DataLoader`` worker
processes, so only a few batches are in memory at once. The transforms are the standard
ones for large images, at any size (224, 64, 32): for training a random resized crop and a
horizontal flip; for evaluation a resize to 8/7 of the size and a centre crop.
:func:`loader` shards the files over torchrun's processes with a ``DistributedSampler``;
:func:`fit_files` trains from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from . import distributed
from .folders import list_images
from .models import EmbeddingModel
from .training import TrainConfig, TrainingRun

__all__ = ["ImageFiles", "fit_files", "loader"]


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
        class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        return cls(list_images(root / split, class_names), class_names, image_size, train)

    @property
    def labels(self) -> torch.Tensor:
        """``(N,)`` int64: every item's label, without opening a file."""
        return torch.tensor([label for _, label in self.items], dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        file, label = self.items[index]
        try:
            with Image.open(file) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError) as err:  # unreadable, truncated or not an image
            raise ValueError(
                f"{file}: cannot decode this image ({err}); replace or delete it"
            ) from err
        return self.transform(image), label


def loader(
    files: ImageFiles, batch_size: int, epoch: int, seed: int, workers: int = 2
) -> DataLoader:
    """This process's batches of one epoch: a ``(seed, epoch)``-seeded shuffle shared by
    every process, each taking every ``world_size()``-th item; ``batch_size`` is the global
    batch (each process loads ``batch_size / world_size()``). The last partial batch is
    dropped (BatchNorm). ``workers`` processes decode; their augmentation is seeded by
    ``(seed, epoch)`` too, so a resumed epoch repeats its batches exactly."""
    if workers < 1:
        raise ValueError(f"workers {workers}: decode in at least one worker process")
    distributed.batch_slice(batch_size)  # checks that it divides
    sampler: DistributedSampler = DistributedSampler(
        files,
        num_replicas=distributed.world_size(),
        rank=distributed.rank(),
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        files,
        batch_size=batch_size // distributed.world_size(),
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed * 100_003 + epoch),
    )


def fit_files(
    model: EmbeddingModel,
    objective: nn.Module,
    files: ImageFiles,
    config: TrainConfig,
    checkpoint: Path | None = None,
    checkpoint_config: dict | None = None,
    desc: str = "training",
    workers: int = 2,
) -> list[float]:
    """:func:`~backfill_lib.training.fit` for images read from disk as training goes:
    ``workers`` processes decode and augment each batch (``files`` should be a training
    :class:`ImageFiles`; ``config.augment`` is not used: its transforms are the
    augmentation). Returns the mean loss of every epoch."""
    steps_per_epoch = len(loader(files, config.batch_size, 0, config.seed, workers))
    if config.epochs < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"{desc}: need epochs >= 1 and at least one batch of {config.batch_size} images "
            f"(got {config.epochs}, {len(files)} images)"
        )

    def batches(epoch: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return loader(files, config.batch_size, epoch, config.seed, workers)

    first = next(  # a first batch for the model's data-dependent initialisation
        iter(
            DataLoader(
                files,
                batch_size=min(len(files), 1024),
                num_workers=workers,
                generator=torch.Generator().manual_seed(config.seed),
            )
        )
    )
    run = TrainingRun(config, steps_per_epoch, checkpoint, checkpoint_config, desc)
    return run.train(model, objective, batches, first[0])
