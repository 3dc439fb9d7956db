"""The course notebooks' one setup call, :func:`notebook_experiment`: the experiment a
notebook reads, on the data a student chose (trained here, or a pack of embeddings)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import default_config
from .experiment import Experiment
from .pack_experiment import PackExperiment

__all__ = ["DATASET_ENV", "PACK_PREFIX", "PROFILE_ENV", "notebook_experiment"]

DATASET_ENV, PROFILE_ENV = "BACKFILL_DATASET", "BACKFILL_PROFILE"
PACK_PREFIX = "pack:"


def notebook_experiment(
    methods: tuple[str, ...],
    dataset: str | None = None,
    profile: str | None = None,
    data_root: str | Path | None = None,
    default: str = "digits",
    pictured: bool = False,
) -> Experiment | PackExperiment:
    """The course notebooks' one setup call: an :class:`Experiment` of ``methods`` with the
    documented defaults (:func:`~backfill_lib.pipeline.config.default_config`), printing what it
    runs on.

    ``dataset`` defaults to ``$BACKFILL_DATASET``, else ``default``: the embedded
    ``"digits"`` (trained here), or ``"pack:cifar10"``, the shipped CIFAR-10 pack; ``profile``
    to ``$BACKFILL_PROFILE``, else ``"gpu"`` when a GPU is present (e.g. on Colab), else
    ``"cpu"``. So one switch runs every notebook on real
    photographs: ``BACKFILL_DATASET=imagefolder:/abs/path/to/cifar10 jupyter lab`` (an
    absolute path: notebooks run in ``notebooks/``). ``data_root`` defaults to
    ``$BACKFILL_DATA_ROOT``; trained models are cached in ``$BACKFILL_CACHE`` (default
    ``~/.cache/backfill_lib``), so a second run loads them. ``pack:FILE`` (or ``pack:NAME``,
    a pack the library ships) reads a pack of embeddings (``backfill pack``) instead: a
    :class:`PackExperiment`, nothing trained; ``pictured`` keeps only the test images it has
    pictures of (the explorer's gallery; ignored on other data).
    """
    dataset = dataset or os.environ.get(DATASET_ENV) or default
    if dataset.startswith(PACK_PREFIX):
        packed = PackExperiment(dataset.removeprefix(PACK_PREFIX), methods, pictured)
        meta = packed.pack.meta
        print(
            f"{dataset}: {meta['dataset']} ({meta['setting']}) embedded by the models of "
            f"`{meta['command']}`, methods {', '.join(methods)}\noptions: {meta['options']}"
        )
        return packed
    profile = (
        profile or os.environ.get(PROFILE_ENV) or ("gpu" if torch.cuda.is_available() else "cpu")
    )
    config = default_config(dataset, profile, methods=methods, data_root=data_root)
    experiment = Experiment(config, data_root)
    print(
        f"{dataset} ({profile} profile), methods {', '.join(methods)}; cache {experiment.cache_dir}"
        f"\noptions: {config.options}"
    )
    return experiment
