"""Where and how this process computes: its device, whether bf16 is fast on it, and the
record of both that every checkpoint keeps (:func:`numerics`).

The cache key of a model says *what* is trained; :func:`numerics` says *how*. They are kept
apart on purpose: CPU results move by a few tenths of a mAP point with the thread count
(sums taken in another order), a model trained under ``torchrun`` by N processes must load
in the one process of ``backfill reproduce``, and a key holding them would retrain
everything for that noise. :func:`warn_if_computed_otherwise` speaks instead when a
checkpoint computed otherwise is loaded or resumed.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from . import distributed

__all__ = ["bf16_is_native", "default_device", "numerics", "warn_if_computed_otherwise"]


def default_device() -> torch.device:
    """CUDA when present (this process's GPU under torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def bf16_is_native() -> bool:
    """Whether bf16 arithmetic is fast here: on a GPU, or a CPU with AMX or AVX512-BF16
    tiles. Elsewhere (AVX2-only x86, most ARM) PyTorch emulates it, and a bf16 training step
    of the CPU profile's network ran 18x slower than fp32 (bench/README.md)."""
    if torch.cuda.is_available():
        return True
    cpu = torch.cpu  # the checks are private in torch 2.x: absent means "not known to be fast"
    return any(
        getattr(cpu, check, lambda: False)()
        for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    )


def numerics() -> dict[str, Any]:
    """How this process computes: ``{"device", "threads", "processes", "torch"}``, kept in
    every checkpoint as ``trained_with``. To repeat a CPU run bit for bit, pin the threads
    it recorded (``OMP_NUM_THREADS=N``)."""
    device = default_device()
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "processes": distributed.world_size(),
        "torch": str(torch.__version__),
    }


def warn_if_computed_otherwise(path: Path, stored: dict | None, consequence: str) -> None:
    """Warn when the checkpoint at ``path`` was made under other :func:`numerics` (nothing
    for a checkpoint from before they were recorded)."""
    now = numerics()
    if stored is None or stored == now or not distributed.is_main():
        return
    differ = ", ".join(
        f"{k} {stored.get(k)} (now {now[k]})" for k in now if stored.get(k) != now[k]
    )
    warnings.warn(f"{path} was computed with {differ}: {consequence}", stacklevel=3)
