"""Training-loop overhead: ``training.fit`` against a bare forward/backward/step loop.

Both train the same model (fresh copies, same init) on the same in-memory uint8 batches in
the same order with the same optimiser; ``fit`` adds its bookkeeping (seeded shuffling,
LR schedule, loss accumulation, tqdm, per-epoch checkpointing). Augmentation is off in both
so that the comparison is of the loop itself. Goal: samples/s ratio at least 0.9.

    python bench/training_loop.py [--arch resnet20] [--images 4096] [--epochs 2]

Last line: ``ratio <fit samples/s / bare samples/s>``.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from backfill_lib import TrainConfig
from backfill_lib.models.embedding import EmbeddingModel
from backfill_lib.training.objectives import ClassifierObjective
from backfill_lib.training.trainer import fit


def bare_loop(model, images, labels, config: TrainConfig) -> None:
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=config.weight_decay,
    )
    n, b = len(labels), config.batch_size
    model.train()
    for epoch in range(config.epochs):
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen)
        for i in range(n // b):
            idx = order[i * b : (i + 1) * b]
            x = images[idx].float() / 255
            loss = F.cross_entropy(model.classifier(model(x)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="resnet20")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.images,))
    config = replace(
        TrainConfig(arch=args.arch, embed_dim=64, batch_size=128), epochs=args.epochs, augment=False
    )
    model = EmbeddingModel(args.arch, 64, 10, 3, [0.5] * 3, [0.25] * 3)
    samples = args.epochs * (args.images // config.batch_size) * config.batch_size
    bare_model, fit_model = copy.deepcopy(model), copy.deepcopy(model)
    start = time.perf_counter()
    bare_loop(bare_model, images, labels, config)
    bare = samples / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        fit(
            fit_model,
            ClassifierObjective(),
            images,
            labels,
            config,
            Path(tmp) / "m.pt",
            {"bench": 1},
        )
        ours = samples / (time.perf_counter() - start)
    print(f"{args.arch}, {args.images} images x {args.epochs} epochs, batch {config.batch_size}")
    print(f"bare loop: {bare:8.1f} samples/s")
    print(f"fit:       {ours:8.1f} samples/s")
    print(f"ratio {ours / bare:.3f}")


if __name__ == "__main__":
    main()
