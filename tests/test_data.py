import os
import pickle
import shutil
import tarfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from backfill_lib.data import DatasetNotFoundError, augment, load_dataset
from backfill_lib.experiments import Experiment
from backfill_lib.reproduce import setting_config
from backfill_lib.splits import evaluation_set, make_split, validation_holdout


def test_digits_loads_offline_with_a_stratified_split():
    ds = load_dataset("digits")
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape[1:] == (1, 8, 8)
    assert len(ds.train_images) + len(ds.test_images) == 1797
    assert ds.num_classes == 10
    assert torch.bincount(ds.test_labels).min() >= 85  # every class in the test split


def write_tree(root, classes=("cat", "dog", "emu"), per_class=3, size=(20, 12), test="test"):
    rng = np.random.default_rng(0)
    for split in ("train", test):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")


def test_image_folder_is_decoded_resized_and_cached(tmp_path):
    write_tree(tmp_path / "tree")
    cache = tmp_path / "cache"
    ds = load_dataset(f"imagefolder:{tmp_path / 'tree'}", cache_dir=cache, image_size=16)
    assert ds.class_names == ["cat", "dog", "emu"]
    assert (
        ds.train_images.shape == (9, 3, 16, 16)
        and ds.test_labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    )
    assert len(list((cache / "data").glob("imagefolder-*.pt"))) == 1
    again = load_dataset(f"imagefolder:{tmp_path / 'tree'}", cache_dir=cache, image_size=16)
    assert torch.equal(again.train_images, ds.train_images)


def test_image_folder_reads_a_val_folder_when_there_is_no_test_folder(tmp_path):
    write_tree(tmp_path / "tree", classes=("cat", "dog"), per_class=2, test="val")
    (tmp_path / "tree" / "val" / "cat" / "1.png").unlink()  # tell val/ from train/ by size
    ds = load_dataset(f"imagefolder:{tmp_path / 'tree'}", cache_dir=tmp_path / "c", image_size=8)
    assert ds.train_labels.tolist() == [0, 0, 1, 1] and ds.test_labels.tolist() == [0, 1, 1]


def test_an_image_edited_in_place_at_the_same_size_is_decoded_again(tmp_path):
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / "tree" / split / name).mkdir(parents=True)
            Image.new("RGB", (4, 4), "red").save(tmp_path / "tree" / split / name / "a.ppm")
    target = tmp_path / "tree" / "train" / "cat" / "a.ppm"
    cache, dataset = tmp_path / "cache", f"imagefolder:{tmp_path / 'tree'}"
    before = load_dataset(dataset, cache_dir=cache, image_size=4)
    size = target.stat().st_size
    Image.new("RGB", (4, 4), "blue").save(target)  # raw PPM: same byte count, other pixels
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    assert target.stat().st_size == size
    after = load_dataset(dataset, cache_dir=cache, image_size=4)
    assert before.train_images[0, :, 0, 0].tolist() == [255, 0, 0]
    assert after.train_images[0, :, 0, 0].tolist() == [0, 0, 255]


def test_image_folder_without_splits_is_a_clear_error(tmp_path):
    (tmp_path / "flat" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_dataset(f"imagefolder:{tmp_path / 'flat'}")


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


def test_splits():
    ds = load_dataset("digits")
    ext = make_split(ds, "extended-class")
    assert ext.old_classes == 5 and (ds.train_labels[ext.old_indices] < 5).all()
    assert len(ext.new_indices) == len(ds.train_labels)
    data = make_split(ds, "extended-data", seed=1)
    assert len(data.old_indices) == len(ds.train_labels) // 2 and data.old_classes == 10
    open_ = make_split(ds, "open-class")
    assert open_.test_classes == (8, 9) and (ds.train_labels[open_.new_indices] < 8).all()
    _, test_labels = evaluation_set(ds, open_)
    assert set(test_labels.tolist()) == {8, 9}
    with pytest.raises(ValueError, match="unknown setting"):
        make_split(ds, "extended-everything")


@pytest.mark.parametrize("validation", [False, True])
def test_a_model_trained_on_the_same_images_in_two_settings_has_one_checkpoint(
    tmp_path, validation
):
    """extended-data's new model trains on every image of every class, as extended-class's
    does: one cache key, while its old model, its compatible models (other old model) and
    its embeddings (other query/gallery set) stay its own."""
    artefacts = {}
    for name in ("extended-class", "extended-data", "open-class"):
        config = replace(setting_config("digits", "cpu", name), validation=validation)
        artefacts[name] = Experiment(config, cache_dir=tmp_path).artefacts
    data = {name: a.data for name, a in artefacts.items()}
    assert [d.training_setting("new") for d in data.values()] == [
        "extended-class",
        "extended-class",
        "open-class",
    ]
    assert [d.training_setting("old") for d in data.values()] == list(data)
    path = {name: a.checkpoint_path("new") for name, a in artefacts.items()}
    assert path["extended-data"] == path["extended-class"] != path["open-class"]
    old = {name: a.checkpoint_path("old") for name, a in artefacts.items()}
    assert len(set(old.values())) == 3


def test_a_shared_new_model_is_trained_once_and_embeds_each_settings_images(tmp_path):
    ext, data = (
        Experiment(
            replace(setting_config("digits", "cpu", name, epochs=1), limit_images=64),
            cache_dir=tmp_path,
        ).artefacts
        for name in ("extended-class", "extended-data")
    )
    assert data.model_key("new") == ext.model_key("new")
    assert len(list((tmp_path / "checkpoints").glob("new-*.pt"))) == 1
    assert torch.equal(ext.embeddings("new"), data.embeddings("new"))  # both test every class
    key = ext.model_key("new")
    assert {p.name for p in (tmp_path / "embeddings").glob("new-*")} == {
        f"new-{key}-test.pt",
        f"new-{key}-test-extended-data.pt",
    }


def test_validation_holdout_is_disjoint_and_stratified():
    labels = torch.arange(100) % 5
    fit, val = validation_holdout(labels, 0.2)
    assert len(set(fit.tolist()) & set(val.tolist())) == 0 and len(fit) + len(val) == 100
    assert torch.bincount(labels[val]).tolist() == [4] * 5


def transformations_matching(image: torch.Tensor, out: torch.Tensor, pad: int) -> set:
    """Every (dy, dx, flipped) such that ``out`` is ``image`` shifted by (dy, dx) with zero
    fill, then mirrored left-right if ``flipped``."""
    c, h, w = image.shape
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    found = set()
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            shifted = padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            for flipped in (False, True):
                if torch.equal(out, shifted.flip(-1) if flipped else shifted):
                    found.add((dy, dx, flipped))
    return found


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_translates_and_flips_colour_images_only(channels):
    """Each output is one translation by at most H/8 pixels (zero fill) of its input, mirrored
    for colour images about half the time and never for grey ones (a flipped digit is another
    digit), with many different shifts over the batch; the generator fixes the outcome."""
    size, batch = 16, 64
    pad = size // 8
    images = torch.randint(1, 255, (batch, channels, size, size), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    chosen = []
    for image, augmented in zip(images, out, strict=True):
        matches = transformations_matching(image, augmented, pad)
        assert len(matches) == 1, "not a translation (or flip) of its input"
        chosen.append(matches.pop())
    shifts = {(dy, dx) for dy, dx, _ in chosen}
    flips = sum(flipped for _, _, flipped in chosen)
    assert len(shifts) > (2 * pad + 1) ** 2 // 2, shifts
    if channels == 3:
        assert 0.25 * batch < flips < 0.75 * batch
    else:
        assert flips == 0
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, augment(images, torch.Generator().manual_seed(1)))


def write_official_tiny_imagenet(root, wnids=("n02", "n01"), val=("n01", "n02", "n09", "n01")):
    """The tiny-imagenet-200 layout: train/<wnid>/images/*.JPEG (+ a boxes file), val/images
    labelled by val_annotations.txt, words.txt. ``val`` may name classes with no train folder."""
    rng = np.random.default_rng(0)

    def image(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, "JPEG")

    for wnid in wnids:
        for i in range(3):
            image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t9\t9\n")
    rows = []
    for i, wnid in enumerate(val):
        image(root / "val" / "images" / f"val_{i}.JPEG")
        rows.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t9\t9")
    (root / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    (root / "words.txt").write_text(
        "n01\tgoldfish, Carassius auratus\nn02\tEuropean fire salamander\nn09\tbullfrog\n"
    )


def test_tiny_imagenet_official_layout_any_subset_with_class_words(tmp_path):
    write_official_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    ds = load_dataset(f"tinyimagenet:{tmp_path / 'tiny-imagenet-200'}", cache_dir=tmp_path / "c")
    assert ds.name == "tinyimagenet:tiny-imagenet-200"
    assert ds.class_names == ["goldfish", "European fire salamander"]  # sorted wnids n01, n02
    assert ds.train_images.shape == (6, 3, 32, 32) and ds.train_labels.tolist() == [0] * 3 + [1] * 3
    assert ds.test_labels.tolist() == [0, 1, 0]  # val_0 n01, val_1 n02, val_3 n01; n09 left out


def test_tiny_imagenet_reads_an_image_folder_tree_or_a_tar_of_one(tmp_path):
    write_tree(tmp_path / "tin" / "dev", classes=("n05", "n04"), size=(64, 64))
    (tmp_path / "tin" / "dev" / "words.txt").write_text("n04\tscorpion\n")
    with tarfile.open(tmp_path / "dev.tar", "w") as tar:
        tar.add(tmp_path / "tin" / "dev", arcname="dev")
    cache = tmp_path / "cache"
    from_tar = load_dataset(f"tinyimagenet:{tmp_path / 'dev.tar'}", cache_dir=cache)
    assert from_tar.class_names == ["scorpion", "n05"]  # no words for n05: its wnid
    assert from_tar.test_images.shape == (6, 3, 32, 32)
    from_folder = load_dataset(f"tinyimagenet:{tmp_path / 'tin' / 'dev'}", cache_dir=cache)
    assert torch.equal(from_folder.train_images, from_tar.train_images)
    again = load_dataset(f"tinyimagenet:{tmp_path / 'dev.tar'}", cache_dir=cache)  # extracted once
    (tmp_path / "copy").mkdir()  # the same archive copied elsewhere: new path and mtime
    shutil.copy(tmp_path / "dev.tar", tmp_path / "copy" / "dev.tar")
    load_dataset(f"tinyimagenet:{tmp_path / 'copy' / 'dev.tar'}", cache_dir=cache)
    assert len([p for p in (cache / "data").iterdir() if p.is_dir()]) == 1
    assert torch.equal(again.test_labels, from_tar.test_labels)


def test_tiny_imagenet_without_a_train_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="tinyimagenet-dev100.tar"):
        load_dataset(f"tinyimagenet:{tmp_path / 'empty'}")


@pytest.mark.slow
def test_the_shared_tinyimagenet_dev100_tar(shared_datasets, tmp_path):
    tar = shared_datasets / "tinyimagenet-dev100.tar"
    if not tar.exists():
        pytest.skip("tinyimagenet-dev100.tar not present")
    ds = load_dataset(f"tinyimagenet:{tar}", cache_dir=tmp_path)
    assert ds.num_classes == 100 and ds.image_shape == (3, 32, 32)
    assert torch.bincount(ds.train_labels).tolist() == [500] * 100
    assert torch.bincount(ds.test_labels).tolist() == [50] * 100
    assert all(name and not name.startswith("n0") for name in ds.class_names)  # words.txt names
