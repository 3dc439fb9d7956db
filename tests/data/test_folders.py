"""Folder datasets decoded into tensors: ImageFolder trees and Tiny-ImageNet (official
layout, any subset, a tar of either), cached, and clear errors for the wrong layout."""

import io
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from backfill_lib.data.images import DatasetNotFoundError
from backfill_lib.data.load import load_dataset


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


def test_an_annotation_may_not_name_a_file_outside_the_dataset(tmp_path):
    """val_annotations.txt naming ../../../secret.JPEG would pull a file from outside the
    dataset into its test set: refused, with the path named."""
    root = tmp_path / "tiny"
    write_official_tiny_imagenet(root)
    Image.new("RGB", (64, 64)).save(tmp_path / "secret.JPEG")
    with (root / "val" / "val_annotations.txt").open("a") as fh:
        fh.write("../../../secret.JPEG\tn01\t0\t0\t9\t9\n")
    with pytest.raises(ValueError, match=r"secret.JPEG points outside the dataset folder"):
        load_dataset(f"tinyimagenet:{root}", cache_dir=tmp_path / "c")


def test_an_annotation_line_of_another_shape_is_named_with_its_number(tmp_path):
    root = tmp_path / "tiny"
    write_official_tiny_imagenet(root)
    with (root / "val" / "val_annotations.txt").open("a") as fh:
        fh.write("val_9.JPEG n01 0 0 9 9\n")  # spaces, not tabs
    with pytest.raises(ValueError, match=r"val_annotations.txt, line 5: expected"):
        load_dataset(f"tinyimagenet:{root}", cache_dir=tmp_path / "c")


def tar_of(path, members: dict[str, bytes | str]) -> None:
    """A tar archive at ``path`` holding ``members``: {name in the archive: a file's bytes,
    or the target of a symbolic link (a str)}."""
    with tarfile.open(path, "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))


@pytest.mark.parametrize(
    "members",
    [
        {"dev/train/a/x.txt": b"x", "../escape.txt": b"out"},
        {"dev/train/a/x.txt": b"x", "dev/train/a/out": "../../../../outside"},
        {"dev/train/a/passwd": "/etc/passwd"},
    ],
    ids=["a .. member", "a link out", "an absolute link"],
)
def test_a_tar_that_leaves_its_folder_is_one_error_and_leaves_nothing(tmp_path, members):
    tar_of(tmp_path / "evil.tar", members)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"evil.tar cannot be extracted .* leave its folder"):
        load_dataset(f"tinyimagenet:{tmp_path / 'evil.tar'}", cache_dir=cache)
    assert not list((cache / "data").glob("*.partial")) and not (tmp_path / "escape.txt").exists()
    assert not [p for p in (cache / "data").iterdir() if p.is_dir()]


def test_a_truncated_tar_is_one_error_naming_it(tmp_path):
    write_tree(tmp_path / "dev", classes=("n01", "n02"))
    with tarfile.open(tmp_path / "full.tar", "w") as tar:
        tar.add(tmp_path / "dev", arcname="dev")
    (tmp_path / "cut.tar").write_bytes((tmp_path / "full.tar").read_bytes()[:3000])
    with pytest.raises((ValueError, DatasetNotFoundError), match="cut.tar"):
        load_dataset(f"tinyimagenet:{tmp_path / 'cut.tar'}", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.partial"))


EXTRACT = """
import sys
from backfill_lib.data.load import load_dataset
dataset = load_dataset("tinyimagenet:" + sys.argv[1], cache_dir=sys.argv[2])
print(len(dataset.train_labels), int(dataset.train_images.sum()))
"""


@pytest.mark.slow
def test_two_processes_extracting_one_tar_into_one_cache_both_succeed(tmp_path):
    """Extraction takes a lock, as training does: the second process waits, then finds the
    folder done (without it, one run in four failed with "Directory not empty")."""
    write_tree(tmp_path / "dev", classes=tuple(f"n{i:02d}" for i in range(12)), per_class=20)
    with tarfile.open(tmp_path / "dev.tar", "w") as tar:
        tar.add(tmp_path / "dev", arcname="dev")
    for attempt in range(3):
        cache = tmp_path / f"cache{attempt}"
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", EXTRACT, str(tmp_path / "dev.tar"), str(cache)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert outputs[0][0] == outputs[1][0]
        assert not list((cache / "data").glob("*.partial"))
