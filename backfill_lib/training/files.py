"""Training from images left on disk (``stream:``): sharded loaders, the loop, embedding.

The data type is :class:`~backfill_lib.data.files.ImageFiles`; :func:`loader` shards its
files over torchrun's processes with a ``DistributedSampler``, :func:`fit_files` runs the
same :class:`~.trainer.TrainingRun` as in-memory training over it, and :func:`embed_files`
embeds it a batch at a time.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..data.files import ImageFiles
from ..models.embedding import EmbeddingModel
from . import distributed
from .compute import default_device
from .trainer import TrainConfig, TrainingRun

__all__ = ["embed_files", "fit_files", "loader"]


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
    """:func:`~.trainer.fit` for images read from disk as training goes:
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
    """:func:`~.embedding.embed` for files: unit embeddings ``(N, d)`` (CPU,
    float32) of every image, in order, through the evaluation transform."""
    device = default_device()
    model.eval().to(device)
    batches = DataLoader(files.for_evaluation(), batch_size=256, num_workers=workers)
    out = [model(x.to(device).float() / 255).cpu() for x, _ in batches]
    model.cpu()
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)
