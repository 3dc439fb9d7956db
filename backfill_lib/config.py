"""What determines an experiment's numbers: :class:`ExperimentConfig` and its defaults.

A configuration is a plain frozen dataclass: it serialises to ``results.json`` (``config``)
and is the source of every cache key (see :mod:`backfill_lib.storage`). The defaults per
dataset and compute profile were chosen on validation splits; docs/choices.md records each
grid and the rule that picked from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from . import backfill as bf
from .compute import bf16_is_native
from .methods import get_method, method_names
from .training import TrainConfig
from .transformation import TransformConfig

__all__ = [
    "CPU_PROFILE_LOSS_OPTIONS",
    "CPU_PROFILE_LOSS_OPTIONS_BY_FAMILY",
    "CPU_PROFILE_METRIC_COMPATIBLE",
    "CPU_PROFILE_METRIC_COMPATIBLE_BY_FAMILY",
    "PROFILES",
    "ExperimentConfig",
    "check_methods",
    "default_config",
]

PROFILES = ("cpu", "gpu", "imagenet")

# The compatible-loss options of the CPU profile on 32x32 images that differ from the
# registry's, chosen on CIFAR-10's validation split (docs/choices.md): the weights of BCT,
# RACT and L2, and AdvBCT's handling of classes the old model never saw (the authors' skip);
# then, per dataset family (the name before the colon), the options that family chose on its
# own validation split. 100 classes need a heavier constraint than 10.
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

# The metric-compatible loss's temperature and weight on the CPU profile: CIFAR-10's choice,
# and per dataset family (the name before the colon) the families that chose their own on
# their own validation split (docs/choices.md). 100 classes want a sharper temperature.
CPU_PROFILE_METRIC_COMPATIBLE: dict[str, Any] = {"tau": 0.2, "mc_weight": 16.0}
CPU_PROFILE_METRIC_COMPATIBLE_BY_FAMILY: dict[str, dict[str, Any]] = {
    "tinyimagenet": {"tau": 0.1, "mc_weight": 4.0},
}


def _default_compatible_losses() -> dict[str, dict]:
    return {m: dict(get_method(m).loss_options) for m in method_names("compatible")}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines an experiment's numbers.

    ``compatible_losses``: per compatible method, ``weight`` (lambda of its extra loss) and
    the loss's own options (BCT ``unseen``; AdvBCT ``lambda_adv``, ``lambda_eb``,
    ``outlier_fence`` of its class radii, ``unseen``, ``r0``; RACT ``tau``), chosen on the
    validation split (see docs/choices.md); the defaults are the registry's
    (:mod:`backfill_lib.methods`).
    ``split_seed`` seeds the data splits (extended-data's random half, the validation
    holdout); model seeds live in ``old`` / ``new``.
    ``validation=True`` trains on 80% of the training images and uses the other 20% as
    query/gallery: the mode in which every default was chosen (``bench/tune.py``), so that
    no choice ever looks at the reported test split.
    ``image_size``: the side in pixels that folder datasets are resized to (``imagefolder:``,
    ``tinyimagenet:``, ``stream:``).
    ``limit_images`` (smoke tests): at most that many images per model's training set and
    per evaluation set (:class:`~backfill_lib.splits.ExperimentData`).
    """

    dataset: str = "digits"
    setting: str = "extended-class"
    old: TrainConfig = TrainConfig()
    new: TrainConfig = TrainConfig()
    rt: TransformConfig = TransformConfig()
    rt_mc: TransformConfig = TransformConfig(mc_weight=4.0)
    compatible_losses: dict = field(default_factory=_default_compatible_losses)
    methods: tuple[str, ...] = field(default_factory=method_names)
    orders: tuple[str, ...] = bf.ORDERS
    steps: int = 20
    order_seed: int = 0
    split_seed: int = 0
    validation: bool = False
    image_size: int = 32
    limit_images: int | None = None


def default_config(
    dataset: str = "digits", profile: str = "cpu", **overrides: Any
) -> ExperimentConfig:
    """The documented defaults for a dataset and compute profile (choices: docs/choices.md).

    - digits: SmallCNN, 32-d, 30 epochs, cosine classifier scale 2 (seconds on a CPU).
    - 32x32 datasets, ``cpu``: airbench for both models, 64-d, one-cycle SGD with label
      smoothing, channels-last, bf16 where it is native (:func:`bf16_is_native`: about 1,100
      images/s on 2 cores with AMX), else fp32 (about 200 images/s on 2 AVX2 cores); the
      compatible-loss options :data:`CPU_PROFILE_LOSS_OPTIONS` and the metric-compatible
      loss's :data:`CPU_PROFILE_METRIC_COMPATIBLE` (tau 0.2, weight 16), both chosen on
      CIFAR-10's validation split, each overridden where the dataset family chose its own
      (:data:`CPU_PROFILE_LOSS_OPTIONS_BY_FAMILY`,
      :data:`CPU_PROFILE_METRIC_COMPATIBLE_BY_FAMILY`; ``tinyimagenet``: BCT weight 3, RACT
      weight 0.3 and tau 0.2, L2 weight 1, metric-compatible tau 0.1 and weight 4).
    - ``gpu``: ResNet-18 (3x3 stem) for both models, 128-d, 100 epochs, batch 256.
    - ``imagenet``: ResNet-50 (standard stem) at 224 px, 128-d, 90 epochs, batch 256, cosine
      LR 0.1, label smoothing 0.1, bf16; for ``stream:`` datasets such as ImageNet-1K.

    ``batch_size`` is the global batch under torchrun, so no profile needs scaling by the
    number of processes.

    The new models use seed 1 and the old seed 0: an independently trained new model must
    not share the old model's initialisation (a shared init makes them partly compatible
    by accident). Keyword ``overrides`` replace fields (e.g. ``setting="open-class"``).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    rt_mc = ExperimentConfig.rt_mc
    compatible_losses = _default_compatible_losses()
    image_size = ExperimentConfig.image_size
    if dataset == "digits":
        train = TrainConfig(
            arch="cnn-small", embed_dim=32, epochs=30, batch_size=64, lr=0.05, classifier_scale=2.0
        )
    elif profile == "cpu":
        family = dataset.split(":", 1)[0]
        rt_mc = replace(rt_mc, **CPU_PROFILE_METRIC_COMPATIBLE)
        rt_mc = replace(rt_mc, **CPU_PROFILE_METRIC_COMPATIBLE_BY_FAMILY.get(family, {}))
        for chosen in (
            CPU_PROFILE_LOSS_OPTIONS,
            CPU_PROFILE_LOSS_OPTIONS_BY_FAMILY.get(family, {}),
        ):
            for method, options in chosen.items():
                compatible_losses[method].update(options)
        train = TrainConfig(
            arch="airbench",
            embed_dim=64,
            epochs=16,
            batch_size=256,
            lr=0.2,
            label_smoothing=0.2,
            schedule="one-cycle",
            warmup=0.25,
            precision="bf16" if bf16_is_native() else "fp32",
        )
    elif profile == "gpu":
        train = TrainConfig(arch="resnet18", embed_dim=128, epochs=100, batch_size=256, lr=0.2)
    else:
        image_size = 224
        train = TrainConfig(
            arch="resnet50-imagenet",
            embed_dim=128,
            epochs=90,
            batch_size=256,
            lr=0.1,
            label_smoothing=0.1,
            precision="bf16",
        )
    return replace(
        ExperimentConfig(
            dataset=dataset,
            old=train,
            new=replace(train, seed=1),
            rt_mc=rt_mc,
            compatible_losses=compatible_losses,
            image_size=image_size,
        ),
        **overrides,
    )


def check_methods(methods: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate method names (:func:`~backfill_lib.methods.get_method`) and put them in
    registry order; old/old and new/new are always evaluated (they anchor the gain)."""
    for name in methods:
        get_method(name)
    wanted = set(methods) | set(method_names("reference"))
    return tuple(m for m in method_names() if m in wanted)
