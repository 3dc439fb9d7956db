"""What the explorer shows (:class:`ExplorerData`): the library's experiment, or the
evaluation part of your own upgrade, with its pictures when you have them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..core.merge import TwoPartEmbeddings
from ..methods.registry import method_names
from ..pipeline.experiment import Experiment
from ..pipeline.pack_experiment import PackExperiment
from ..pipeline.upgrade import UpgradeReport

__all__ = ["THUMBNAIL_PX", "ExplorerData"]

THUMBNAIL_PX = 64


@dataclass(frozen=True)
class ExplorerData:
    """What the explorer shows, wherever it comes from: per backfill order the results
    dictionary and the order ``(N,)``; per method its two parts; the ``(N,)`` labels of the
    items (each a query, the others its gallery); each item's name (the tile's caption) and
    picture (``None``: a numbered tile); the curves' number of steps."""

    results: dict[str, dict]
    orders: dict[str, np.ndarray]
    parts: dict[str, TwoPartEmbeddings]
    labels: torch.Tensor
    class_name: Callable[[int], str]
    picture: Callable[[int], Image.Image | None]
    item_name: Callable[[int], str]
    steps: int

    @classmethod
    def of(
        cls,
        source: Experiment | PackExperiment | UpgradeReport | ExplorerData,
        image_paths: Sequence[str | Path] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> ExplorerData:
        """What to show of ``source``; ``image_paths`` and ``class_names`` describe your own
        upgrade's items (:meth:`from_upgrade`) and are refused with anything else."""
        if isinstance(source, UpgradeReport):
            return cls.from_upgrade(source, image_paths, class_names)
        if image_paths is not None or class_names is not None:
            raise ValueError(
                "image_paths and class_names describe your own upgrade's items: give them with "
                "an UpgradeReport (an experiment shows its own test images and classes)"
            )
        if isinstance(source, Experiment | PackExperiment):
            return cls.from_experiment(source)
        return source

    @classmethod
    def from_experiment(cls, experiment: Experiment | PackExperiment) -> ExplorerData:
        """The test images of the library's own experiment (or of a pack's: the images it has
        pictures of), every method and order."""
        config = experiment.config
        images, labels = experiment.data.test_data
        methods = [m for m in config.methods if m not in method_names("reference")]

        def picture(item: int) -> Image.Image | None:
            if images is None:  # a pack's experiment on every test image: no pictures
                return None
            stored = images[item]  # (C, H, W) uint8, or (image, label) decoded from a file
            pixels = (stored if isinstance(stored, torch.Tensor) else stored[0]).permute(1, 2, 0)
            grey = pixels.shape[2] == 1  # digits: dark ink on white reads better
            return Image.fromarray((255 - pixels[..., 0] if grey else pixels).numpy())

        return cls(
            results={order: experiment.results(order) for order in config.orders},
            orders={order: experiment.order(order) for order in config.orders},
            parts={m: experiment.parts(m) for m in methods},
            labels=labels,
            class_name=lambda label: experiment.data.dataset.class_names[label],
            picture=picture,
            item_name=lambda item: f"test image {item}",
            steps=config.steps,
        )

    @classmethod
    def from_upgrade(
        cls,
        report: UpgradeReport,
        image_paths: Sequence[str | Path] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> ExplorerData:
        """The evaluation part of your own upgrade (random order). ``image_paths``: one file
        per row of the embeddings you evaluated (``embed_image_folder`` returns them), or
        ``None`` for numbered tiles; ``class_names[label]`` names a label (default: its id)."""
        rows = report.items  # (N,) the evaluation items' rows in your arrays
        if image_paths is not None and len(image_paths) <= int(rows.max()):
            raise ValueError(
                f"image_paths has {len(image_paths)} entries, but the embeddings have at least "
                f"{int(rows.max()) + 1} rows: give one image file per row, in the same order"
            )

        def picture(item: int) -> Image.Image | None:
            if image_paths is None:
                return None
            with Image.open(image_paths[rows[item]]) as image:
                return ImageOps.fit(image.convert("RGB"), (THUMBNAIL_PX, THUMBNAIL_PX))

        return cls(
            results={"random": report.results},
            orders={"random": report.order},
            parts=dict(report.parts),
            labels=report.labels,
            class_name=lambda label: class_names[label] if class_names else f"class {label}",
            picture=picture,
            item_name=lambda item: f"row {rows[item]}",
            steps=report.results["config"]["steps"],
        )
