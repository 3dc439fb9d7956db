"""Seeded augmentation: translations up to H/8 for every image, flips for colour images only."""

import pytest
import torch

from backfill_lib.data.augment import augment


def transformations_matching(image: torch.Tensor, out: torch.Tensor, pad: int) -> set:
    """Every (dy, dx, flipped) such that ``out`` is ``image`` shifted by (dy, dx) with zero
    fill, then mirrored left-right if ``flipped``."""
    c, h, w = image.shape
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    found = set()
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            shifted = padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            for flipped in (False, True):
                if torch.equal(out, shifted.flip(-1) if flipped else shifted):
                    found.add((dy, dx, flipped))
    return found


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_translates_and_flips_colour_images_only(channels):
    """Each output is one translation by at most H/8 pixels (zero fill) of its input, mirrored
    for colour images about half the time and never for grey ones (a flipped digit is another
    digit), with many different shifts over the batch; the generator fixes the outcome."""
    size, batch = 16, 64
    pad = size // 8
    images = torch.randint(1, 255, (batch, channels, size, size), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    chosen = []
    for image, augmented in zip(images, out, strict=True):
        matches = transformations_matching(image, augmented, pad)
        assert len(matches) == 1, "not a translation (or flip) of its input"
        chosen.append(matches.pop())
    shifts = {(dy, dx) for dy, dx, _ in chosen}
    flips = sum(flipped for _, _, flipped in chosen)
    assert len(shifts) > (2 * pad + 1) ** 2 // 2, shifts
    if channels == 3:
        assert 0.25 * batch < flips < 0.75 * batch
    else:
        assert flips == 0
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, augment(images, torch.Generator().manual_seed(1)))
