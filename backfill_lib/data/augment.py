"""Batch augmentation of small images, seeded: the same generator gives the same batch."""

from __future__ import annotations

import torch

__all__ = ["augment"]


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard small-image augmentation on a uint8 or float batch ``(B, C, H, W)``.

    Random translation by up to H/8 pixels (zero padding, the CIFAR "pad 4 and crop 32"
    recipe) and, for colour images, a random horizontal flip (digits are not flipped).
    """
    b, c, h, w = images.shape
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dev = images.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None]).view(b, 1, h, 1).expand(b, c, h, w)
    cols = (dx[:, None] + torch.arange(w, device=dev)[None]).view(b, 1, 1, w).expand(b, c, h, w)
    batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
    chan = torch.arange(c, device=dev).view(1, c, 1, 1)
    out = padded[batch, chan, rows, cols]
    if c == 3:
        flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
        out[flip] = out[flip].flip(-1)
    return out
