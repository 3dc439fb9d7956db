"""What the forward transformation costs before serving: one h pass per stored gallery item,
against the backbone pass per item that a backfill spends.

FCT (``fct``) upgrades the whole old gallery with h before it serves; online backfilling
re-embeds items with the new backbone as the backfill goes. This times, side by side in
one run and on the same threads, inference (eval mode, no gradients, fp32) of

- h, FCT's network (:class:`~backfill_lib.core.transformation.PsiNetwork` from the old
  embedding's dims to the new one's, 256 hidden units), on stored embeddings, and
- the new model's backbone (the full :class:`~backfill_lib.models.EmbeddingModel`) on the
  images, for the CPU profile's network on 32x32 images (airbench, 64-d) and the digits
  recipe's small CNN on 8x8 images (32-d),

each at random initialisation (the cost does not depend on the weights), and prints the
time per item and how many h passes one backbone pass buys. Last line:
``ratio <backbone pass / h pass, airbench>``.

    python bench/forward_cost.py [--items 4096] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from backfill_lib import PsiNetwork
from backfill_lib.models.embedding import EmbeddingModel

BACKBONES = {  # arch: (channels, image size, embedding dims, channels-last as the profile)
    "airbench": (3, 32, 64, True),
    "cnn-small": (1, 8, 32, False),
}


@torch.no_grad()
def seconds_per_item(
    module: torch.nn.Module, inputs: torch.Tensor, batch: int, repeats: int
) -> float:
    """The best of ``repeats`` passes over ``inputs`` in batches of ``batch``, per item."""
    module.eval()
    module(inputs[:batch])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(inputs), batch):
            module(inputs[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return best / len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, {args.items} items, best of {args.repeats}")
    ratios = {}
    for arch, (channels, size, dims, channels_last) in BACKBONES.items():
        model = EmbeddingModel(
            arch,
            dims,
            10,
            channels,
            [0.5] * channels,
            [0.25] * channels,
            channels_last=channels_last,
        )
        images = torch.rand(args.items, channels, size, size)
        h = PsiNetwork(dims, dims, hidden=256)
        stored = torch.nn.functional.normalize(torch.randn(args.items, dims), dim=1)
        backbone = seconds_per_item(model, images, 256, args.repeats)
        forward = seconds_per_item(h, stored, 4096, args.repeats)
        ratios[arch] = backbone / forward
        print(
            f"{arch:9s} {size}x{size}: backbone {1e6 * backbone:8.1f} us/item, h "
            f"{1e6 * forward:6.2f} us/item: one backbone pass = {ratios[arch]:,.0f} h passes"
        )
    print(f"ratio {ratios['airbench']:.0f}")


if __name__ == "__main__":
    main()
