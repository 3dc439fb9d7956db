"""Shared fixtures and helpers. The tests mirror the package (``tests/core`` tests
``backfill_lib/core``...); ``tests/project`` tests what surrounds the code (docs, notebooks,
CI, packaging, the site, types, and the mutation table).

The shared datasets live beside the project (``../shared``) or at ``$BACKFILL_SHARED``;
tests that need them skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from backfill_lib.data.dataset import ImageDataset
from backfill_lib.data.load import load_dataset
from backfill_lib.models.embedding import EmbeddingModel
from backfill_lib.training.objectives import ClassifierObjective
from backfill_lib.training.trainer import TrainConfig

SHARED = Path(os.environ.get("BACKFILL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
# A digits model that trains in a second or two.
SMALL_CNN = TrainConfig(arch="cnn-small", embed_dim=16, epochs=4, batch_size=64, lr=0.05)
# The image tree of :func:`image_tree`: classes, and images per class and split.
TREE_CLASSES, TREE_PER_CLASS = 3, 40


def unit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``n`` random unit vectors of dimension ``d``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1)


def toward(target: torch.Tensor, noise: torch.Tensor, w: float) -> torch.Tensor:
    """Unit rows ``w`` of the way from ``noise`` to ``target`` (both ``(B, d)``)."""
    return F.normalize(w * target + (1 - w) * noise, dim=1)


def fresh_model(dataset: ImageDataset) -> tuple[EmbeddingModel, ClassifierObjective]:
    """A seeded SMALL_CNN-sized digits model and its cross-entropy objective."""
    torch.manual_seed(0)
    mean, std = dataset.channel_stats()
    return EmbeddingModel("cnn-small", 16, 10, 1, mean, std), ClassifierObjective()


def colour_blobs(n: int, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy 32x32 colour images whose class is a bright square's corner and hue."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.randint(0, 120, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    for i, y in enumerate(labels.tolist()):
        r, c = divmod(y, 2)
        images[i, y % 3, 16 * r : 16 * r + 12, 16 * c : 16 * c + 12] = 250
    return images, labels


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    path = SHARED / "datasets"
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set $BACKFILL_SHARED)")
    return path


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """$BACKFILL_CACHE when set (CI shares it with the notebooks), else a fresh folder."""
    return Path(os.environ.get("BACKFILL_CACHE") or tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    return load_dataset("digits")


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory) -> Path:
    """An ImageFolder tree of 48 px images, each class a colour plus noise; a few are not
    square (``TREE_CLASSES`` classes, ``TREE_PER_CLASS`` images per class and split)."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 215, (TREE_CLASSES, 3))
    for split in ("train", "test"):
        for c in range(TREE_CLASSES):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(TREE_PER_CLASS):
                shape = (48, 64 if i % 5 == 0 else 48, 3)
                pixels = np.clip(colours[c] + rng.normal(0, 30, shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / f"c{c}" / f"{i}.png")
    return root


@pytest.fixture
def other_thread_count():
    """Run the test body under another torch thread count than the checkpoints it makes."""
    before = torch.get_num_threads()
    yield lambda: torch.set_num_threads(1 if before != 1 else 2)
    torch.set_num_threads(before)
