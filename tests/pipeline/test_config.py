"""The defaults: tables per profile, options that follow the data, no numbers elsewhere."""

from dataclasses import replace

import pytest

from backfill_lib.pipeline.config import (
    DIGITS_FALLBACK,
    DIGITS_TRAINING,
    PROFILE_IMAGE_SIZE,
    PROFILE_TRAINING,
    PROFILES,
    default_config,
    fallback_options,
)
from tests.conftest import TREE_CLASSES


def chosen(config):
    losses, rt_mc = config.compatible_losses, config.transformations["rt+mc"]
    weights = tuple(losses[m]["weight"] for m in ("bct", "ract", "l2"))
    return (rt_mc.tau, rt_mc.mc_weight, *weights, losses["ract"]["tau"])


def test_the_fallback_follows_the_number_of_classes_not_the_name():
    """No option is keyed by a dataset's name: any image dataset takes the choice made on the
    data nearest in number of classes (CIFAR-10's up to 31, Tiny-ImageNet's from 32), on
    every profile; the digits recipe keeps the registry's options (chosen on digits)."""
    cifar10 = (0.2, 16.0, 0.3, 0.01, 0.03, 0.05)
    tiny = (0.1, 4.0, 3.0, 0.3, 1.0, 0.2)
    for name in ("imagefolder:any", "tinyimagenet:any.tar", "stream:any", "cifar100"):
        for profile in PROFILES:
            by_classes = {n: chosen(default_config(name, profile, classes=n)) for n in (2, 31, 32)}
            assert by_classes == {2: cifar10, 31: cifar10, 32: tiny}, (name, profile)
            assert chosen(default_config(name, profile, classes=1000)) == tiny
    config = default_config("imagefolder:x", classes=100)
    assert config.options.startswith("fallback: chosen on Tiny-ImageNet dev100")
    assert config.options.endswith("the nearest to this data's 100 classes")
    assert config.compatible_losses["advbct"]["unseen"] == "skip"
    digits = default_config("digits")
    assert chosen(digits) == (0.1, 4.0, 1.0, 1.0, 1.0, 0.05)
    assert digits.compatible_losses["advbct"]["unseen"] == "synthesise"
    assert digits.options == f"fallback: {DIGITS_FALLBACK}"


def test_the_fallback_reads_the_number_of_classes_from_the_data(image_tree, tmp_path):
    """Without ``classes``, an image dataset is read (as an experiment would read it) to
    count its classes; an unreadable one fails with the loader's error."""
    config = default_config(f"imagefolder:{image_tree}", cache_dir=tmp_path)
    assert config.options.endswith(f"the nearest to this data's {TREE_CLASSES} classes")
    with pytest.raises(FileNotFoundError):
        default_config(f"imagefolder:{tmp_path / 'nowhere'}", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="follow the data's number of classes"):
        fallback_options(PROFILE_TRAINING["cpu"], None)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("profile", ["cpu", "imagenet"])
def test_a_bf16_profile_trains_in_bf16_only_where_it_is_native(monkeypatch, native, profile):
    monkeypatch.setattr("backfill_lib.pipeline.config.bf16_is_native", lambda: native)
    expected = "bf16" if native else "fp32"  # emulated bf16 ran 18x slower than fp32
    assert default_config("cifar10", profile, classes=10).new.precision == expected
    assert default_config("cifar10", profile, classes=10).old.precision == expected
    assert default_config("cifar10", "gpu", classes=10).new.precision == "fp32"
    assert default_config("digits", profile).new.precision == "fp32"


def test_every_profile_reads_its_tables(monkeypatch):
    """default_config holds no numbers of its own: each profile's models train as its table
    says (the new model with seed 1), digits on every profile as DIGITS_TRAINING."""
    monkeypatch.setattr("backfill_lib.pipeline.config.bf16_is_native", lambda: True)
    for profile in ("gpu", "imagenet"):
        config = default_config("stream:/data/imagenet", profile, classes=1000)
        assert config.old == PROFILE_TRAINING[profile]
        assert config.new == replace(PROFILE_TRAINING[profile], seed=1)
        assert config.image_size == PROFILE_IMAGE_SIZE.get(profile, 32)
    for profile in PROFILES:
        config = default_config("digits", profile)
        assert (config.old, config.new.seed, config.image_size) == (DIGITS_TRAINING, 1, 32)
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        default_config("digits", "tpu")
