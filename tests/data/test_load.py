"""Datasets by name: the embedded digits offline, the shared CIFAR-10 tree, unknown names,
and files left on disk (`stream:`) checked before any work."""

import shutil

import pytest
import torch

from backfill_lib.data.load import load_dataset


def test_digits_loads_offline_with_a_stratified_split():
    ds = load_dataset("digits")
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape[1:] == (1, 8, 8)
    assert len(ds.train_images) + len(ds.test_images) == 1797
    assert ds.num_classes == 10
    assert torch.bincount(ds.test_labels).min() >= 85  # every class in the test split


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_real_cifar10_image_folder(shared_datasets, tmp_path):
    root = shared_datasets / "cifar10"
    if not root.is_dir():
        pytest.skip("cifar10 not present")
    # decode a two-class, few-image copy: the real JPEGs through the real code path
    for split in ("train", "test"):
        for cls in ("airplane", "cat"):
            (tmp_path / "c10" / split / cls).mkdir(parents=True)
            for f in sorted((root / split / cls).iterdir())[:4]:
                shutil.copy(f, tmp_path / "c10" / split / cls / f.name)
    ds = load_dataset(f"imagefolder:{tmp_path / 'c10'}")
    assert ds.train_images.shape == (8, 3, 32, 32) and ds.class_names == ["airplane", "cat"]
    assert 40 < ds.train_images.float().mean() < 220


def test_files_left_on_disk_are_checked_before_any_work_once_per_file_list(
    image_tree, tmp_path, monkeypatch
):
    """``stream:`` reads every image's header when the dataset is loaded (a bad file is
    named before training, not after it), and remembers a clean file list in the cache."""
    cache = tmp_path / "cache"
    dataset = load_dataset(f"stream:{image_tree}", cache_dir=cache)
    assert len(list((cache / "data").glob(f"checked-{dataset.fingerprint()}"))) == 1

    def no_reading(file):
        raise AssertionError("checked again")

    monkeypatch.setattr("backfill_lib.data.load.image_dimensions", no_reading)
    load_dataset(f"stream:{image_tree}", cache_dir=cache)  # the same files: not read again
    bad = tmp_path / "bad"
    shutil.copytree(image_tree, bad)
    (bad / "test" / "c1" / "0.png").write_bytes(b"not an image")
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"c1/0.png: cannot decode this image"):
        load_dataset(f"stream:{bad}", cache_dir=cache)
