"""Data-parallel training over processes launched by ``torchrun``, in a few plain functions.

``torchrun --nproc_per_node=N -m backfill_lib train ...`` starts N copies of the program;
each reads its rank from the environment. :class:`~.trainer.TrainingRun` then gives
every rank a slice of each global batch and, after each backward pass, replaces every
gradient by its mean over the ranks (:func:`average_gradients`): the ranks take identical
optimiser steps, so their weights stay identical, and the step equals one process's step
on the whole global batch. That is what ``DistributedDataParallel`` computes, without its
wrapper: the objectives call ``model.classifier`` and train parameters of their own (a
discriminator, margins), which a wrapper around the model would not see. The price is no
overlap of communication with the backward pass.

BatchNorm normalises with each rank's own batch statistics (as ``DistributedDataParallel``
does without ``SyncBatchNorm``); the running statistics are averaged over the ranks at the
end of every epoch (:func:`average_buffers`), so every rank holds the same model and a
checkpoint written by rank 0 resumes every rank. A loss that compares the images of a
batch with each other (RACT's negatives) sees the rank's slice, as under
``DistributedDataParallel`` without gathering. Only rank 0 writes files and prints.

With one process (no ``torchrun``) every function here does nothing, and training is
exactly the single-process code path.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "average_buffers",
    "average_gradients",
    "barrier",
    "batch_slice",
    "broadcast_parameters",
    "is_main",
    "main_decides",
    "mean_over_ranks",
    "rank",
    "setup",
    "teardown",
    "world_size",
]


def world_size() -> int:
    """How many processes train together (``$WORLD_SIZE``, set by torchrun; else 1)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (``$RANK``; else 0)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def batch_slice(global_batch: int) -> slice:
    """This rank's share of a global batch: every ``world_size()``-th item from its rank."""
    if global_batch % world_size():
        raise ValueError(
            f"the global batch ({global_batch}) must be divisible by the number of processes "
            f"({world_size()}); change the batch size or --nproc_per_node"
        )
    return slice(rank(), None, world_size())


def setup() -> None:
    """Join the process group when launched by torchrun with more than one process: NCCL on
    GPUs (one per process, ``$LOCAL_RANK``), gloo on CPUs. Safe to call twice.

    The group is left again at exit (:func:`teardown`, registered with :mod:`atexit`): a
    process that exits still in a gloo group can abort in the interpreter's shutdown
    ("terminate called without an active exception", SIGABRT) after its work is done.
    """
    if world_size() == 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    atexit.register(teardown)


def teardown() -> None:
    """Leave the process group, while the interpreter is still whole. Safe to call twice."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written a checkpoint)."""
    if _active():
        dist.barrier()


def main_decides(value: bool) -> bool:
    """Rank 0's ``value`` on every rank (e.g. whether a checkpoint exists, decided under
    rank 0's file lock), so that all ranks take the same branch."""
    if not _active():
        return value
    decision = [value]
    dist.broadcast_object_list(decision, src=0)
    return bool(decision[0])


def broadcast_parameters(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank (before training starts)."""
    if not _active():
        return
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks, in one flat all-reduce.

    Every rank must hold gradients for the same parameters (the same model and objective);
    parameters without a gradient are skipped on every rank alike.
    """
    if not _active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def average_buffers(modules: Iterable[nn.Module]) -> None:
    """Average floating-point buffers (BatchNorm's running statistics) over the ranks."""
    if not _active():
        return
    for module in modules:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data)
                buffer.data /= dist.get_world_size()


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar tensor over the ranks (e.g. an epoch's loss), as a float."""
    if _active():
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)
