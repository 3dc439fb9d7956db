"""Training throughput of each 32x32 backbone: fp32 NCHW against bf16 channels-last.

One training step (forward, cross-entropy, backward, Nesterov SGD step) of the full
:class:`~backfill_lib.models.EmbeddingModel` on random images, batch 256, on this machine's
CPU threads. Prints images/s per backbone and precision; the last line is
``ratio <airbench bf16 channels-last images/s / ResNet-20 fp32 images/s>`` (the new CPU
profile's backbone and fast path against the previous profile's). ``--compile`` adds a
``torch.compile``d bf16 column (the CPU profile does not compile: it was slower here).

    python bench/backbones.py [--archs resnet20 airbench ...] [--batch 256] [--steps 6]
                              [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from backfill_lib.models import EmbeddingModel


def images_per_second(
    arch: str, bf16: bool, batch: int, steps: int, compile_model: bool = False
) -> float:
    """Training images/s of ``arch``, fp32 NCHW or bf16 channels-last, after 2 warm-up steps
    (which also compile, with ``compile_model``)."""
    torch.manual_seed(0)
    model = EmbeddingModel(arch, 64, 10, 3, [0.5] * 3, [0.25] * 3, channels_last=bf16).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    forward = torch.compile(model) if compile_model else model
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for step in range(steps + 2):
        if step == 2:
            start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model.classifier(forward(x)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--archs", nargs="+", default=["resnet20", "resnet56", "airbench", "airbench-half"]
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (bf16)")
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads, batch {args.batch}, images/s")
    speed = {}
    for arch in args.archs:
        for bf16 in (False, True):
            speed[arch, bf16] = images_per_second(arch, bf16, args.batch, args.steps)
        line = f"{arch:14s} fp32 NCHW {speed[arch, False]:7.0f}   bf16 channels-last"
        line += f" {speed[arch, True]:7.0f}"
        if args.compile:
            compiled = images_per_second(arch, True, args.batch, args.steps, compile_model=True)
            line += f"   compiled {compiled:7.0f}"
        print(line, flush=True)
    if ("airbench", True) in speed and ("resnet20", False) in speed:
        print(f"ratio {speed['airbench', True] / speed['resnet20', False]:.2f}")


if __name__ == "__main__":
    main()
