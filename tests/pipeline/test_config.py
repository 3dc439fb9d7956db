"""The defaults: tables per profile, options per dataset family, no numbers elsewhere."""

from dataclasses import replace

import pytest

from backfill_lib.pipeline.config import (
    DIGITS_TRAINING,
    PROFILE_IMAGE_SIZE,
    PROFILE_TRAINING,
    PROFILES,
    default_config,
)


def test_the_cpu_profile_takes_a_dataset_familys_own_choices():
    """Tiny-ImageNet chose its own tau, metric-compatible weight, BCT, RACT and L2 weights and
    RACT's tau on its validation split; other 32x32 datasets take CIFAR-10's; the CPU
    profile's options do not leak into digits."""
    chosen = {}
    for name in ("imagefolder:cifar10", "cifar100", "tinyimagenet:any-subset.tar", "digits"):
        config = default_config(name, "cpu")
        losses = config.compatible_losses
        chosen[name] = (
            config.transformations["rt+mc"].tau,
            config.transformations["rt+mc"].mc_weight,
            losses["ract"]["weight"],
            losses["l2"]["weight"],
            losses["bct"]["weight"],
            losses["ract"]["tau"],
        )
    assert chosen == {
        "imagefolder:cifar10": (0.2, 16.0, 0.01, 0.03, 0.3, 0.05),
        "cifar100": (0.2, 16.0, 0.01, 0.03, 0.3, 0.05),
        "tinyimagenet:any-subset.tar": (0.1, 4.0, 0.3, 1.0, 3.0, 0.2),
        "digits": (0.1, 4.0, 1.0, 1.0, 1.0, 0.05),
    }
    assert default_config("digits").compatible_losses["advbct"]["unseen"] == "synthesise"


@pytest.mark.parametrize("native", [True, False])
def test_the_cpu_profile_trains_in_bf16_only_where_it_is_native(monkeypatch, native):
    monkeypatch.setattr("backfill_lib.pipeline.config.bf16_is_native", lambda: native)
    expected = "bf16" if native else "fp32"  # emulated bf16 ran 18x slower than fp32
    assert default_config("cifar10", "cpu").new.precision == expected
    assert default_config("cifar10", "cpu").old.precision == expected
    assert default_config("digits").new.precision == "fp32"


def test_every_profile_reads_its_tables():
    """default_config holds no numbers of its own: each profile's models train as its table
    says (the new model with seed 1), digits on every profile as DIGITS_TRAINING."""
    for profile in ("gpu", "imagenet"):
        config = default_config("stream:/data/imagenet", profile)
        assert config.old == PROFILE_TRAINING[profile]
        assert config.new == replace(PROFILE_TRAINING[profile], seed=1)
        assert config.image_size == PROFILE_IMAGE_SIZE.get(profile, 32)
        assert config.transformations == default_config().transformations  # the registry's
    for profile in PROFILES:
        config = default_config("digits", profile)
        assert (config.old, config.new.seed, config.image_size) == (DIGITS_TRAINING, 1, 32)
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        default_config("digits", "tpu")
