"""Training throughput of each 32x32 backbone: fp32 NCHW, fp32 channels-last, bf16 channels-last.

One training step (forward, cross-entropy, backward, Nesterov SGD step) of the full
:class:`~backfill_lib.models.EmbeddingModel` on random images, batch 256, on this machine's
CPU threads. Prints images/s per backbone and layout/precision, whether this CPU has native
bf16 (:func:`backfill_lib.compute.bf16_is_native`), and, last, ``ratio <airbench in the
precision the CPU profile picks here / airbench in the other precision>`` (both
channels-last): above 1 when the profile's pick is the faster one. ``--compile`` adds a
``torch.compile``d channels-last column in the precision the CPU profile picks here (the
profile does not compile: it was slower in bf16 on AMX).

    python bench/backbones.py [--archs resnet20 airbench ...] [--batch 256] [--steps 6]
                              [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from backfill_lib import default_config
from backfill_lib.models.embedding import EmbeddingModel
from backfill_lib.training.compute import bf16_is_native


def images_per_second(
    arch: str,
    bf16: bool,
    channels_last: bool,
    batch: int,
    steps: int,
    compile_model: bool = False,
) -> float:
    """Training images/s of ``arch`` after 2 warm-up steps (which also compile, with
    ``compile_model``)."""
    torch.manual_seed(0)
    model = EmbeddingModel(
        arch, 64, 10, 3, [0.5] * 3, [0.25] * 3, channels_last=channels_last
    ).train()
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
    parser.add_argument(
        "--compile", action="store_true", help="also time torch.compile, in the profile's pick"
    )
    args = parser.parse_args()
    picked = default_config("cifar10", classes=10).new.precision
    print(
        f"{torch.get_num_threads()} threads, batch {args.batch}, images/s; native bf16: "
        f"{bf16_is_native()}, so the CPU profile trains in {picked}"
    )
    layouts = {"fp32 NCHW": (False, False), "fp32 channels-last": (False, True)}
    layouts["bf16 channels-last"] = (True, True)
    speed = {}
    for arch in args.archs:
        line = f"{arch:14s}"
        for name, (bf16, channels_last) in layouts.items():
            speed[arch, name] = images_per_second(arch, bf16, channels_last, args.batch, args.steps)
            line += f"   {name} {speed[arch, name]:6.0f}"
        if args.compile:
            bf16 = picked == "bf16"
            compiled = images_per_second(arch, bf16, True, args.batch, args.steps, True)
            line += f"   {picked} compiled {compiled:6.0f}"
        print(line, flush=True)
    if "airbench" in args.archs:
        other = "fp32" if picked == "bf16" else "bf16"
        ratio = (
            speed["airbench", f"{picked} channels-last"]
            / speed["airbench", f"{other} channels-last"]
        )
        print(f"ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
