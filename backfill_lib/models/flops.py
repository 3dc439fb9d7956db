"""What one pass of a network costs, counted rather than timed: the same number on every
machine, so the quality-against-compute figure of one dataset reads alike everywhere."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["forward_flops"]


@torch.no_grad()
def forward_flops(forward: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor) -> int:
    """FLOPs of one call ``forward(example)`` (a multiply-add counts 2), as torch's
    ``FlopCounterMode`` counts them: convolutions and matrix products, which dominate a
    backbone and an MLP alike; element-wise work (activations, normalisation) is left out."""
    with FlopCounterMode(display=False) as counter:
        forward(example)
    return int(counter.get_total_flops())
