"""Shared fixtures. The shared datasets live beside the project (``../shared``) or at
``$BACKFILL_SHARED``; tests that need them skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED = Path(os.environ.get("BACKFILL_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def unit(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """``n`` random unit vectors of dimension ``d``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1)


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
