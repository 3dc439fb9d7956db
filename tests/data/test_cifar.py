"""CIFAR's python-pickle layout: read with the real meta file, never running a crafted
pickle, and a clear message when the files are missing."""

import os
import pickle
import shutil

import numpy as np
import pytest

from backfill_lib.data.images import DatasetNotFoundError
from backfill_lib.data.load import load_dataset


def test_cifar100_pickle_layout_with_the_real_meta(tmp_path, shared_datasets):
    meta = shared_datasets / "cifar100-meta" / "meta"
    if not meta.exists():
        pytest.skip("cifar100-meta/meta not present")
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    shutil.copy(meta, folder / "meta")
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 10)):
        entry = {
            "data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
            "fine_labels": rng.integers(0, 100, n).tolist(),
            "coarse_labels": rng.integers(0, 20, n).tolist(),
            "filenames": [f"img_{i}.png" for i in range(n)],
        }
        with open(folder / split, "wb") as fh:
            pickle.dump(entry, fh)
    ds = load_dataset("cifar100", data_root=tmp_path)
    assert ds.num_classes == 100 and ds.class_names[:3] == ["apple", "aquarium_fish", "baby"]
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.test_labels.shape == (10,)
    # pixel layout: the first 1024 values are the red plane, row-major
    with open(folder / "train", "rb") as fh:
        raw = pickle.load(fh)["data"][0]
    assert ds.train_images[0, 0, 0, :4].tolist() == raw[:4].tolist()


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_cifar_file_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, fname in enumerate(names):
        protocol = 2 if i % 2 else 5
        entry = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        with open(folder / fname, "wb") as fh:
            pickle.dump(entry, fh, protocol=protocol)
    marker = tmp_path / "code-ran"
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": _RunsAShellCommand(marker)}, fh, protocol=2)
    with pytest.raises(
        ValueError, match=r"batches.meta is not a CIFAR batch.*refused.*posix.system"
    ):
        load_dataset("cifar10", data_root=tmp_path)
    assert not marker.exists()
    # the same files with an honest meta load: numpy arrays in protocols 2 and 5 are admitted
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh, protocol=2)
    ds = load_dataset("cifar10", data_root=tmp_path)
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.class_names[0] == "c0"


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_says_how_to_provide_it(tmp_path, name, monkeypatch):
    monkeypatch.delenv("BACKFILL_DATA_ROOT", raising=False)
    with pytest.raises(DatasetNotFoundError, match="--data-root"):
        load_dataset(name)
    with pytest.raises(DatasetNotFoundError, match="download"):
        load_dataset(name, data_root=tmp_path)


def write_cifar10(root, batch=None, test_batch=None):
    """A small CIFAR-10 python layout under ``root``: five 4-image training batches, a test
    batch and the meta file; ``batch`` replaces the first training batch's dict."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        entry = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump(batch if (i == 1 and batch is not None) else entry, fh)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(test_batch or {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 9]}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    return folder


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            {"data": np.zeros((150, 3072), np.uint8), "labels": [0] * 130},
            "data_batch_1: 150 images but labels of shape",
        ),
        (
            {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 57]},
            "data_batch_1: labels from 0 to 57, outside the 10 classes",
        ),
        ({"data": np.zeros((2, 3072), np.uint8)}, "data_batch_1 has no 'labels'"),
        (
            {"data": np.zeros((2, 1000), np.uint8), "labels": [0, 1]},
            r"data_batch_1: data of shape \(2, 1000\)",
        ),
    ],
    ids=["labels short", "label out of range", "no labels", "wrong size"],
)
def test_a_damaged_cifar_batch_is_named_when_loaded(tmp_path, batch, message):
    write_cifar10(tmp_path, batch)
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", data_root=tmp_path)


def test_a_consistent_small_cifar_layout_loads(tmp_path):
    write_cifar10(tmp_path)
    dataset = load_dataset("cifar10", data_root=tmp_path)
    assert dataset.train_images.shape == (20, 3, 32, 32) and dataset.test_labels.tolist() == [0, 9]
