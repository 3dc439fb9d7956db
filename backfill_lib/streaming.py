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

import hashlib
from pathlib import Path
from typing import cast, overload

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from . import distributed
from .compute import default_device
from .dataset import ImageDataset
from .folders import image_folder_tree, list_images, open_rgb
from .models import EmbeddingModel
from .training import TrainConfig, TrainingRun

__all__ = ["ImageFiles", "embed_files", "fit_files", "load_files", "loader"]


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
        class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
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
    batch = min(config.batch_size, len(files))  # as fit: a small set is one batch

    def batches(epoch: int) -> DataLoader:
        return loader(files, batch, epoch, config.seed, workers)

    steps_per_epoch = len(batches(0))
    if config.epochs < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"{desc}: need epochs >= 1 and at least 2 images (got {config.epochs}, "
            f"{len(files)} images)"
        )

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


@torch.no_grad()
def embed_files(model: EmbeddingModel, files: ImageFiles, workers: int = 2) -> torch.Tensor:
    """:func:`~backfill_lib.training.embed` for files: unit embeddings ``(N, d)`` (CPU,
    float32) of every image, in order, through the evaluation transform."""
    device = default_device()
    model.eval().to(device)
    batches = DataLoader(files.for_evaluation(), batch_size=256, num_workers=workers)
    out = [model(x.to(device).float() / 255).cpu() for x, _ in batches]
    model.cpu()
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)


def load_files(path: str | Path, image_size: int = 32) -> ImageDataset:
    """``stream:PATH``: an ImageFolder tree (``train/`` and ``test/`` or ``val/``) whose
    images stay on disk: the dataset's image "tensors" are :class:`ImageFiles`, decoded a
    batch at a time wherever the library indexes them (training, embedding)."""
    root, test_name, class_names = image_folder_tree(path, "stream", "stream:~/data/imagenet")
    train = ImageFiles(list_images(root / "train", class_names), class_names, image_size, True)
    test = ImageFiles(list_images(root / test_name, class_names), class_names, image_size, False)
    return ImageDataset(  # ImageFiles stand in for the image tensors: they index alike
        name=f"stream:{root.name}",
        train_images=cast(torch.Tensor, train),
        train_labels=train.labels,
        test_images=cast(torch.Tensor, test),
        test_labels=test.labels,
        class_names=train.class_names,
    )
