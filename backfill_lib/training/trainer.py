"""The training loop, kept apart from the models and the methods (minGPT's trainer).

:func:`fit` trains an :class:`~backfill_lib.models.embedding.EmbeddingModel` under an
*objective* (a module ``objective(model, images, labels, progress) -> loss``, see
:mod:`.objectives`) with SGD and a cosine or one-cycle schedule, tqdm progress, and an
atomic partial checkpoint after every epoch. Each epoch's shuffle and augmentation are
seeded by ``(seed, epoch)``, so an interrupted run resumes from its last finished epoch and
ends with the same weights as an uninterrupted one. The loop knows nothing of any method:
what is trained, and against what, is the objective's business.

Under ``torchrun`` with several processes, :class:`TrainingRun` trains data-parallel: every
rank takes its slice of each global batch and the gradients are averaged
(:mod:`.distributed`); ``batch_size`` stays the global batch, so the schedule and the result
do not depend on the number of processes (up to BatchNorm's per-rank statistics). The
cache of finished checkpoints is :mod:`.checkpoints`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import trange

from ..data.augment import augment
from ..models.embedding import EmbeddingModel
from ..storage import load_derived, save_torch
from . import distributed
from .compute import default_device, numerics, warn_if_computed_otherwise

__all__ = [
    "PRECISIONS",
    "SCHEDULES",
    "TrainConfig",
    "TrainingDivergedError",
    "TrainingRun",
    "fit",
    "make_scheduler",
    "partial_checkpoint_path",
]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


SCHEDULES = ("cosine", "one-cycle")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """How a backbone model is trained.

    ``lr``: the peak learning rate of SGD (Nesterov momentum 0.9) with batch ``batch_size``.
    ``schedule``: ``cosine`` (from ``lr`` down to 0) or ``one-cycle`` (linear warm-up from
    ``lr / 10`` over the first ``warmup`` fraction of the steps, then linear decay to about
    0). ``classifier_scale``: the cosine classifier's logit scale (see
    :class:`~backfill_lib.models.CosineClassifier`). ``label_smoothing``: of the
    cross-entropy. ``precision``: ``fp32``, or ``bf16``: bf16 autocast (fp32 master weights)
    in the channels-last layout, the fast path on CPUs with AMX or AVX512-BF16 and on GPUs.
    Embeddings are always extracted in fp32.
    """

    arch: str = "cnn-small"
    embed_dim: int = 32
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    seed: int = 0
    augment: bool = True
    classifier_scale: float = 16.0
    label_smoothing: float = 0.0
    schedule: str = "cosine"
    warmup: float = 0.0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose {' or '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; choose {' or '.join(PRECISIONS)}"
            )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule of ``config`` over ``total`` steps."""
    if config.schedule == "one-cycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=total,
            pct_start=config.warmup,
            anneal_strategy="linear",
            cycle_momentum=False,
            div_factor=10.0,
            final_div_factor=1e3,
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )


def partial_checkpoint_path(checkpoint: Path) -> Path:
    """Where :class:`TrainingRun` keeps its per-epoch checkpoint while ``checkpoint`` is trained."""
    return checkpoint.with_name(checkpoint.stem + ".partial.pt")


def fit(
    model: EmbeddingModel,
    objective: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    checkpoint: Path | None = None,
    checkpoint_config: dict | None = None,
    desc: str = "training",
) -> list[float]:
    """Train in place on images held in memory; return the mean loss of every epoch.

    ``images (N, C, H, W)`` uint8, ``labels (N,)``. With ``checkpoint``, a partial
    checkpoint (``<name>.partial.pt``) is written after each epoch and resumed from.
    """
    n = len(labels)
    if config.epochs < 1 or n < 2:
        raise ValueError(
            f"{desc}: need epochs >= 1 and at least 2 images (got {config.epochs}, {n})"
        )
    device = default_device()
    images, labels = images.to(device), labels.to(device)
    steps_per_epoch = n // min(config.batch_size, n)  # drop the last partial batch (BatchNorm)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return _memory_batches(images, labels, config, epoch)

    run = TrainingRun(config, steps_per_epoch, checkpoint, checkpoint_config, desc)
    return run.train(model, objective, batches, images[:5000])


def _memory_batches(
    images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's slices of one epoch's global batches. The shuffle and augmentation are
    seeded by ``(config.seed, epoch)`` alone, so a resumed run repeats them exactly. Every
    rank draws the whole global batch's augmentation and keeps its own slice, so the images
    a rank trains on do not depend on the number of ranks."""
    n = len(labels)
    batch = min(config.batch_size, n)
    mine = distributed.batch_slice(batch)
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen).to(images.device)
    for i in range(n // batch):
        idx = order[i * batch : (i + 1) * batch]
        x = augment(images[idx], gen) if config.augment else images[idx]
        yield x[mine], labels[idx][mine]


@dataclass
class TrainingRun:
    """One training run: its optimiser, schedule, per-epoch checkpoint and resume, whatever
    the batches come from (memory: :func:`fit`; files read as training goes:
    :func:`backfill_lib.training.files.fit_files`)."""

    config: TrainConfig
    steps_per_epoch: int
    checkpoint: Path | None
    checkpoint_config: dict | None
    desc: str

    def train(
        self,
        model: EmbeddingModel,
        objective: nn.Module,
        batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
        init_images: torch.Tensor,
    ) -> list[float]:
        """Train in place over ``batches(epoch)`` (this rank's uint8 images and labels);
        ``init_images`` (uint8) feed the model's data-dependent initialisation."""
        config, desc, device = self.config, self.desc, default_device()
        model.to(device)
        objective.to(device)
        params = [p for p in chain(model.parameters(), objective.parameters()) if p.requires_grad]
        optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
        scheduler = make_scheduler(optimizer, config, config.epochs * self.steps_per_epoch)
        modules: dict[str, Any] = dict(
            model=model, objective=objective, optimizer=optimizer, scheduler=scheduler
        )
        partial = partial_checkpoint_path(self.checkpoint) if self.checkpoint else None
        state = load_derived(partial, self.checkpoint_config) if partial is not None else None
        if partial is not None and state is not None:
            for name, module in modules.items():
                module.load_state_dict(state[name])
            start, history = state["epoch"], state["history"]
            warn_if_computed_otherwise(
                partial,
                state.get("trained_with"),
                "the resumed model will not be bit-identical to an uninterrupted run",
            )
        else:
            model.init_from_data(init_images.to(device).float() / 255)
            start, history = 0, []
        distributed.broadcast_parameters((model, objective))
        bar = trange(
            start,
            config.epochs,
            desc=desc,
            leave=False,
            initial=start,
            total=config.epochs,
            disable=not distributed.is_main(),
        )
        for epoch in bar:
            history.append(self._epoch(model, objective, optimizer, scheduler, batches, epoch))
            distributed.average_buffers((model, objective))
            if not math.isfinite(history[-1]):
                raise TrainingDivergedError(
                    f"{desc}: the loss became {history[-1]} in epoch {epoch + 1}; lower the "
                    f"learning rate (now {config.lr}) or the loss weights"
                )
            bar.set_postfix(loss=f"{history[-1]:.3f}")
            if partial is not None and distributed.is_main():
                states = {name: module.state_dict() for name, module in modules.items()}
                save_torch(
                    {
                        "config": self.checkpoint_config,
                        "epoch": epoch + 1,
                        "history": history,
                        "trained_with": numerics(),
                    }
                    | states,
                    partial,
                )
        model.eval()
        if len(history) > 1 and history[-1] > 0.99 * history[0]:
            warnings.warn(
                f"{desc}: the loss did not fall ({history[0]:.3f} -> {history[-1]:.3f}); the "
                "model has probably not learned: check the learning rate and the data",
                stacklevel=3,
            )
        return history

    def _epoch(
        self,
        model: EmbeddingModel,
        objective: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
        epoch: int,
    ) -> float:
        """One epoch; the mean loss over its steps and the ranks."""
        config, device = self.config, default_device()
        total = config.epochs * self.steps_per_epoch
        autocast = torch.autocast(device.type, torch.bfloat16, enabled=config.precision == "bf16")
        model.train()
        objective.train()
        running = torch.zeros((), device=device)
        for i, (x, y) in enumerate(batches(epoch)):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast:
                progress = (epoch * self.steps_per_epoch + i) / total
                loss = objective(model, x.float() / 255, y, progress)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(optimizer.param_groups[0]["params"])
            optimizer.step()
            scheduler.step()
            running += loss.detach()
        return distributed.mean_over_ranks(running) / self.steps_per_epoch
