"""The crash-safe backfill job (:mod:`backfill_lib.serving.job`) on an experiment's gallery:
what ``backfill backfill-job`` runs."""

from __future__ import annotations

from pathlib import Path

import torch

from ..serving.index import BackfillIndex
from ..serving.job import JobReport, run_backfill_job
from ..training.embedding import embed
from .experiment import Experiment

__all__ = ["backfill_experiment_gallery"]


def backfill_experiment_gallery(
    experiment: Experiment,
    index_path: str | Path,
    order: str = "random",
    batch_size: int = 256,
    save_every: int = 1,
    factory: str = "Flat",
    max_batches: int | None = None,
) -> JobReport:
    """The job on an experiment's gallery (its test images): the old part holds the old
    model's embeddings, and the new model re-embeds the images batch by batch, in the
    experiment's ``order`` (``random`` or ``uncertainty``). Gallery ids are test positions."""
    images = experiment.data.test_data[0]  # (N, C, H, W): the gallery's images
    new_model = experiment.model("new")

    def initial() -> BackfillIndex:
        old = experiment.embeddings("old").numpy()
        return BackfillIndex(old, new_model.embed_dim, factory=factory)

    return run_backfill_job(
        index_path,
        experiment.order(order),
        lambda ids: embed(new_model, images[torch.from_numpy(ids)]).numpy(),
        initial,
        batch_size,
        save_every,
        max_batches,
    )
