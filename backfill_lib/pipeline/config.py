"""What determines an experiment's numbers: :class:`ExperimentConfig` and its defaults.

A configuration is a plain frozen dataclass: it serialises to ``results.json`` (``config``)
and is the source of every cache key (see :mod:`backfill_lib.storage`). The defaults are
tables: how models train per profile, and the options each profile's datasets chose on
their validation splits (docs/choices.md records each grid and the rule that picked from
it). :func:`default_config` reads them; it holds no numbers of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..core.orders import ORDERS
from ..core.transformation import TransformConfig
from ..methods.registry import get_method, method_names
from ..training.compute import bf16_is_native
from ..training.trainer import TrainConfig

__all__ = [
    "CPU_PROFILE_LOSS_OPTIONS",
    "CPU_PROFILE_LOSS_OPTIONS_BY_FAMILY",
    "CPU_PROFILE_TRANSFORMATIONS",
    "CPU_PROFILE_TRANSFORMATIONS_BY_FAMILY",
    "DIGITS_TRAINING",
    "PROFILES",
    "PROFILE_IMAGE_SIZE",
    "PROFILE_TRAINING",
    "ExperimentConfig",
    "check_methods",
    "default_config",
]

PROFILES = ("cpu", "gpu", "imagenet")

# How both models of a profile train (the new model takes seed 1). The digits take one
# recipe on every profile: seconds on a CPU.
DIGITS_TRAINING = TrainConfig(
    arch="cnn-small", embed_dim=32, epochs=30, batch_size=64, lr=0.05, classifier_scale=2.0
)
PROFILE_TRAINING = {
    # airbench, one-cycle SGD with label smoothing; bf16 where it is native
    # (:func:`bf16_is_native`), else fp32 (set by :func:`default_config`)
    "cpu": TrainConfig(
        arch="airbench",
        embed_dim=64,
        epochs=16,
        batch_size=256,
        lr=0.2,
        label_smoothing=0.2,
        schedule="one-cycle",
        warmup=0.25,
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

# The options of the CPU profile on 32x32 images that differ from the registry's, as
# {method: options}, chosen on CIFAR-10's validation split: the compatible losses' and the
# transformations'; then, per dataset family (the name before the colon), the options that
# family chose on its own validation split.
CPU_PROFILE_LOSS_OPTIONS: dict[str, dict[str, Any]] = {
    "bct": {"weight": 0.3},
    "ract": {"weight": 0.01},
    "l2": {"weight": 0.03},
    "advbct": {"unseen": "skip"},
}
CPU_PROFILE_LOSS_OPTIONS_BY_FAMILY: dict[str, dict[str, dict[str, Any]]] = {
    "tinyimagenet": {
        "bct": {"weight": 3.0},
        "ract": {"weight": 0.3, "tau": 0.2},
        "l2": {"weight": 1.0},
    },
}
CPU_PROFILE_TRANSFORMATIONS: dict[str, dict[str, Any]] = {
    "rt+mc": {"tau": 0.2, "mc_weight": 16.0},
}
CPU_PROFILE_TRANSFORMATIONS_BY_FAMILY: dict[str, dict[str, dict[str, Any]]] = {
    "tinyimagenet": {"rt+mc": {"tau": 0.1, "mc_weight": 4.0}},
}


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
    query/gallery: the mode in which every default was chosen (``bench/tune.py``), so that
    no choice ever looks at the reported test split.
    ``image_size``: the side in pixels that folder datasets are resized to (``imagefolder:``,
    ``tinyimagenet:``, ``stream:``).
    ``limit_images`` (smoke tests): at most that many images per model's training set and
    per evaluation set (:class:`~backfill_lib.data.splits.ExperimentData`).
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


def _training(dataset: str, profile: str) -> TrainConfig:
    """How both models train on ``dataset`` under ``profile`` (the tables above)."""
    if dataset == "digits":
        return DIGITS_TRAINING
    train = PROFILE_TRAINING[profile]
    if profile == "cpu":  # about 1,100 images/s with AMX; fp32 200 images/s on 2 AVX2 cores
        train = replace(train, precision="bf16" if bf16_is_native() else "fp32")
    return train


def _chosen_options(dataset: str, profile: str) -> tuple[dict, dict]:
    """The compatible losses' and the transformations' options for ``dataset`` under
    ``profile``: the registry's, then the CPU profile's tables on 32x32 data."""
    losses, transformations = _registry_losses(), _registry_transformations()
    if dataset == "digits" or profile != "cpu":
        return losses, transformations
    family = dataset.split(":", 1)[0]
    for chosen in (CPU_PROFILE_LOSS_OPTIONS, CPU_PROFILE_LOSS_OPTIONS_BY_FAMILY.get(family, {})):
        for method, options in chosen.items():
            losses[method].update(options)
    for chosen in (
        CPU_PROFILE_TRANSFORMATIONS,
        CPU_PROFILE_TRANSFORMATIONS_BY_FAMILY.get(family, {}),
    ):
        for method, options in chosen.items():
            transformations[method] = replace(transformations[method], **options)
    return losses, transformations


def default_config(
    dataset: str = "digits", profile: str = "cpu", **overrides: Any
) -> ExperimentConfig:
    """The documented defaults for a dataset and compute profile (choices: docs/choices.md).

    Training from :data:`DIGITS_TRAINING` or :data:`PROFILE_TRAINING`, options from the
    registry and, on the CPU profile for 32x32 data, from the ``CPU_PROFILE_*`` tables.
    ``batch_size`` is the global batch under torchrun, so no profile needs scaling by the
    number of processes.

    The new models use seed 1 and the old seed 0: an independently trained new model must
    not share the old model's initialisation (a shared init makes them partly compatible
    by accident). Keyword ``overrides`` replace fields (e.g. ``setting="open-class"``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    train = _training(dataset, profile)
    losses, transformations = _chosen_options(dataset, profile)
    image_size = ExperimentConfig.image_size
    if dataset != "digits":
        image_size = PROFILE_IMAGE_SIZE.get(profile, image_size)
    config = ExperimentConfig(
        dataset=dataset,
        old=train,
        new=replace(train, seed=1),
        transformations=transformations,
        compatible_losses=losses,
        image_size=image_size,
    )
    return replace(config, **overrides)


def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate method names (:func:`~backfill_lib.methods.registry.get_method`) and put
    them in registry order; old/old and new/new are always evaluated (they anchor the gain)."""
    for name in methods:
        get_method(name)
    wanted = set(methods) | set(method_names("reference"))
    return tuple(m for m in method_names() if m in wanted)
