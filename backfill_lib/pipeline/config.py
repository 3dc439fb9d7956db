"""What determines an experiment's numbers: :class:`ExperimentConfig` and its defaults.

A configuration is a plain frozen dataclass: it serialises to ``results.json`` (``config``)
and is the source of every cache key (see :mod:`backfill_lib.storage`). The defaults are
tables: how models train per profile, and the methods' options chosen on validation splits
that a run without an options file (``backfill tune``) falls back to, by the data's number
of classes, never by its name (docs/choices.md records each grid and the rule that picked
from it). :func:`default_config` reads them; it holds no numbers of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.orders import ORDERS
from ..core.transformation import TransformConfig
from ..data.load import load_dataset
from ..methods.registry import get_method, method_names
from ..storage import default_cache_dir
from ..training.compute import bf16_is_native
from ..training.trainer import TrainConfig
from .options import TunedOptions

__all__ = [
    "DIGITS_TRAINING",
    "FALLBACKS",
    "PROFILES",
    "PROFILE_IMAGE_SIZE",
    "PROFILE_TRAINING",
    "ChosenOptions",
    "ExperimentConfig",
    "check_methods",
    "default_config",
    "fallback_options",
]

PROFILES = ("cpu", "gpu", "imagenet")

# How both models of a profile train (the new model takes seed 1). The digits take one
# recipe on every profile: seconds on a CPU.
DIGITS_TRAINING = TrainConfig(
    arch="cnn-small", embed_dim=32, epochs=30, batch_size=64, lr=0.05, classifier_scale=2.0
)
PROFILE_TRAINING = {
    # airbench, one-cycle SGD with label smoothing
    "cpu": TrainConfig(
        arch="airbench",
        embed_dim=64,
        epochs=16,
        batch_size=256,
        lr=0.2,
        label_smoothing=0.2,
        schedule="one-cycle",
        warmup=0.25,
        precision="bf16",
    ),
    "gpu": TrainConfig(arch="resnet18", embed_dim=128, epochs=100, batch_size=256, lr=0.2),
    # for stream: datasets such as ImageNet-1K, at 224 px
    "imagenet": TrainConfig(
        arch="resnet50-imagenet",
        embed_dim=128,
        epochs=90,
        batch_size=256,
        lr=0.1,
        label_smoothing=0.1,
        precision="bf16",
    ),
}
PROFILE_IMAGE_SIZE = {"imagenet": 224}


@dataclass(frozen=True)
class ChosenOptions:
    """The methods' options chosen on one dataset's validation split (docs/choices.md records
    each grid and the rule that picked from it), and the data they were chosen on: what a
    run without an options file falls back to (:func:`fallback_options`)."""

    chosen_on: str
    classes: int
    compatible_losses: dict[str, dict[str, Any]]
    transformations: dict[str, dict[str, Any]]


# Every image recipe without an options file takes the choice made on the data whose number
# of classes is nearest its own (on a log scale: up to 31 classes CIFAR-10's, from 32
# Tiny-ImageNet's). Values are those that differ from the registry's.
FALLBACKS = (
    ChosenOptions(
        "CIFAR-10 (10 classes, 5,000 training images each, airbench)",
        10,
        {
            "bct": {"weight": 0.3},
            "advbct": {"unseen": "skip"},
            "ract": {"weight": 0.01},
            "l2": {"weight": 0.03},
        },
        {"rt+mc": {"tau": 0.2, "mc_weight": 16.0}},
    ),
    ChosenOptions(
        "Tiny-ImageNet dev100 (100 classes, 500 training images each, airbench)",
        100,
        {
            "bct": {"weight": 3.0},
            "advbct": {"unseen": "skip"},
            "ract": {"weight": 0.3, "tau": 0.2},
            "l2": {"weight": 1.0},
        },
        {"rt+mc": {"tau": 0.1, "mc_weight": 4.0}},
    ),
)
DIGITS_FALLBACK = "the registry's options, chosen on digits for the digits recipe's small CNN"


def _registry_losses() -> dict[str, dict]:
    """Every compatible method's loss options, as the registry declares them."""
    return {m: dict(get_method(m).loss_options) for m in method_names("compatible")}


def _registry_transformations() -> dict[str, TransformConfig]:
    """Every transformation method's :class:`TransformConfig`, as the registry declares it."""
    return {
        m.name: m.transformation
        for m in map(get_method, method_names())
        if m.transformation is not None
    }


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines an experiment's numbers.

    ``transformations``: per transformation method (``rt``, ``rt+mc``), how its psi is
    fitted; ``compatible_losses``: per compatible method, ``weight`` (lambda of its extra
    loss) and the loss's own options (see each method's module in
    :mod:`backfill_lib.methods`). Both default to the registry's and are chosen per profile
    on the validation split (docs/choices.md).
    ``split_seed`` seeds the data splits (extended-data's random half, the validation
    holdout); model seeds live in ``old`` / ``new``.
    ``validation=True`` trains on 80% of the training images and uses the other 20% as
    query/gallery: the mode in which options are chosen (``backfill tune``,
    :mod:`~backfill_lib.pipeline.tune`), so that no choice ever looks at the reported test
    split.
    ``image_size``: the side in pixels that folder datasets are resized to (``imagefolder:``,
    ``tinyimagenet:``, ``stream:``).
    ``limit_images`` (smoke tests): at most that many images per model's training set and
    per evaluation set (:class:`~backfill_lib.data.splits.ExperimentData`).
    ``options`` says where ``compatible_losses`` and ``transformations`` came from
    (``"tuned: FILE ..."`` or ``"fallback: ..."``, recorded in ``results.json``); it is part
    of no cache key.
    """

    dataset: str = "digits"
    setting: str = "extended-class"
    old: TrainConfig = TrainConfig()
    new: TrainConfig = TrainConfig()
    transformations: dict = field(default_factory=_registry_transformations)
    compatible_losses: dict = field(default_factory=_registry_losses)
    methods: tuple[str, ...] = field(default_factory=method_names)
    orders: tuple[str, ...] = ORDERS
    steps: int = 20
    order_seed: int = 0
    split_seed: int = 0
    validation: bool = False
    image_size: int = 32
    limit_images: int | None = None
    options: str = "fallback: the registry's defaults"


def _training(dataset: str, profile: str) -> TrainConfig:
    """How both models train on ``dataset`` under ``profile`` (the tables above)."""
    if dataset == "digits":
        return DIGITS_TRAINING
    train = PROFILE_TRAINING[profile]
    # bf16 only where it is native (:func:`bf16_is_native`): airbench trains at about 1,100
    # images/s in bf16 with AMX, but 10 in emulated bf16 against 200 in fp32 on 2 AVX2 cores
    if train.precision == "bf16" and not bf16_is_native():
        train = replace(train, precision="fp32")
    return train


def _image_size(dataset: str, profile: str) -> int:
    if dataset == "digits":
        return ExperimentConfig.image_size
    return PROFILE_IMAGE_SIZE.get(profile, ExperimentConfig.image_size)


def dataset_classes(
    dataset: str,
    profile: str = "cpu",
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> int:
    """How many classes ``dataset`` has, read from the data as an experiment loads it
    (decoded once into ``cache_dir``, default the cache)."""
    size = image_size or _image_size(dataset, profile)
    cache = cache_dir or default_cache_dir()
    return load_dataset(dataset, data_root, cache, download, size).num_classes


def fallback_options(train: TrainConfig, classes: int | None) -> tuple[dict, dict, str]:
    """The compatible losses' and the transformations' options of a run without an options
    file, and where they come from: for the digits recipe the registry's (chosen on digits),
    for any other the :data:`FALLBACKS` entry nearest in number of ``classes``."""
    losses, transformations = _registry_losses(), _registry_transformations()
    if train.arch == DIGITS_TRAINING.arch:
        return losses, transformations, f"fallback: {DIGITS_FALLBACK}"
    if classes is None or classes < 2:
        raise ValueError(
            f"classes {classes!r}: the fallback options follow the data's number of classes; "
            "pass it (or an options file)"
        )
    chosen = min(FALLBACKS, key=lambda c: abs(math.log(classes / c.classes)))
    for method, options in chosen.compatible_losses.items():
        losses[method].update(options)
    for method, options in chosen.transformations.items():
        transformations[method] = replace(transformations[method], **options)
    source = f"fallback: chosen on {chosen.chosen_on}, the nearest to this data's {classes} classes"
    return losses, transformations, source


def _tuned(losses: dict, transformations: dict, options: TunedOptions) -> tuple[dict, dict]:
    """``losses`` and ``transformations`` with the options file's choices put in."""
    losses = {m: {**o, **options.compatible_losses.get(m, {})} for m, o in losses.items()}
    transformations = {
        m: replace(t, **options.transformations.get(m, {})) for m, t in transformations.items()
    }
    return losses, transformations


def default_config(
    dataset: str = "digits",
    profile: str = "cpu",
    options: TunedOptions | None = None,
    *,
    classes: int | None = None,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
    **overrides: Any,
) -> ExperimentConfig:
    """The documented defaults for a dataset and compute profile (choices: docs/choices.md).

    Training from :data:`DIGITS_TRAINING` or :data:`PROFILE_TRAINING`; the methods' options
    from ``options`` (an options file, :func:`~.options.load_options`), and for the methods
    it does not name from :func:`fallback_options`, which follow the dataset's number of
    ``classes``: given, or read from the dataset (loaded from ``data_root``, decoded into
    ``cache_dir`` as an experiment would) when the recipe needs it.
    ``batch_size`` is the global batch under torchrun, so no profile needs scaling by the
    number of processes.

    The new models use seed 1 and the old seed 0: an independently trained new model must
    not share the old model's initialisation (a shared init makes them partly compatible
    by accident). Keyword ``overrides`` replace fields (e.g. ``setting="open-class"``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    train = _training(dataset, profile)
    image_size = overrides.get("image_size", _image_size(dataset, profile))
    if classes is None and train.arch != DIGITS_TRAINING.arch:
        classes = dataset_classes(dataset, profile, data_root, cache_dir, download, image_size)
    losses, transformations, source = fallback_options(train, classes)
    if options is not None:
        losses, transformations = _tuned(losses, transformations, options)
        untuned = [m for m in (*losses, *transformations) if m not in options.methods]
        source = options.source() + (f"; {', '.join(untuned)}: {source}" if untuned else "")
    config = ExperimentConfig(
        dataset=dataset,
        old=train,
        new=replace(train, seed=1),
        transformations=transformations,
        compatible_losses=losses,
        image_size=image_size,
        options=source,
    )
    return replace(config, **overrides)


def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate method names (:func:`~backfill_lib.methods.registry.get_method`) and put
    them in registry order; old/old and new/new are always evaluated (they anchor the gain)."""
    for name in methods:
        get_method(name)
    wanted = set(methods) | set(method_names("reference"))
    return tuple(m for m in method_names() if m in wanted)
