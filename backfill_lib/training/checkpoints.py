"""The cache of trained models: a checkpoint per configuration, trained once, then loaded.

A checkpoint's name is the hash of everything that determines it (its data, split,
training config, method and the old model's key: the caller's ``cache_config``), so
re-running reuses it and any change trains afresh. Each checkpoint also records how it was
computed (:func:`~.compute.numerics`); loading one computed otherwise warns.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..data.dataset import Images
from ..models.embedding import EmbeddingModel
from ..storage import config_key, exclusive, load_torch, save_torch
from . import distributed
from .compute import numerics, warn_if_computed_otherwise
from .files import fit_files
from .trainer import TrainConfig, fit, partial_checkpoint_path

__all__ = ["Trained", "checkpoint_path", "train_or_load"]


class Trained(NamedTuple):
    """What :func:`train_or_load` returns: the model (eval mode, CPU), its objective, the
    loss of every epoch, and whether this call trained it (``False``: loaded, perhaps after
    waiting for another process to finish training it)."""

    model: EmbeddingModel
    objective: nn.Module
    history: list[float]
    trained_here: bool


def checkpoint_path(cache_dir: Path, name: str, cache_config: dict) -> Path:
    """``cache_dir/checkpoints/<name>-<key of cache_config>.pt``."""
    return Path(cache_dir) / "checkpoints" / f"{name}-{config_key(cache_config)}.pt"


def train_or_load(
    name: str,
    cache_config: dict,
    model: EmbeddingModel,
    objective: nn.Module,
    images: Images,
    labels: torch.Tensor,
    config: TrainConfig,
    cache_dir: Path,
) -> Trained:
    """Load ``cache_dir/checkpoints/<name>-<key>.pt`` into ``model`` and ``objective`` if it
    exists, else train them and save it.

    ``model`` and ``objective`` are freshly built (seeded by the caller with
    ``config.seed``); ``cache_config`` must describe everything that determines the result.
    ``images`` are uint8 tensors, or files left on disk (``stream:``), trained from as they
    are read. Returns a :class:`Trained`.
    """
    path = checkpoint_path(cache_dir, name, cache_config)
    # another process training the same model: wait, then load it (under torchrun, rank 0
    # holds the lock and decides for every rank)
    with exclusive(path) if distributed.is_main() else nullcontext():
        if distributed.main_decides(path.exists()):
            state = load_torch(path, cache_config)
            model.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            warn_if_computed_otherwise(
                path,
                state.get("trained_with"),
                "used as it is (the cache key says what was trained, not how); a model "
                "trained here could differ by a few tenths of a mAP point: delete the file "
                "to train it here",
            )
            return Trained(model.eval(), objective, state["history"], trained_here=False)
        if isinstance(images, torch.Tensor):
            history = fit(model, objective, images, labels, config, path, cache_config, name)
        else:
            history = fit_files(model, objective, images, config, path, cache_config, name)
        model.cpu()
        objective.cpu()
        if distributed.is_main():
            save_torch(
                {
                    "config": cache_config,
                    "history": history,
                    "model": model.state_dict(),
                    "objective": objective.state_dict(),
                    "trained_with": numerics(),
                },
                path,
            )
            partial_checkpoint_path(path).unlink(missing_ok=True)
    distributed.barrier()
    return Trained(model, objective, history, trained_here=True)
