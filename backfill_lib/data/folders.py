"""Image folders decoded into tensors: an ImageFolder tree, and Tiny-ImageNet (the official
layout, any subset of its classes, or a ``.tar`` of either).

Images are converted to RGB, resized to ``image_size`` squared and decoded once; the
tensors are cached keyed by the folder, its file list (sizes and modification times) and
the size.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..storage import exclusive
from .dataset import ImageDataset, cached_dataset
from .images import (
    DatasetNotFoundError,
    class_folders,
    image_folder_tree,
    inside,
    list_images,
    open_rgb,
)

__all__ = ["load_image_folder", "load_tiny_imagenet"]


def load_image_folder(
    path: str | Path, cache_dir: str | Path | None = None, image_size: int = 32
) -> ImageDataset:
    """Decode an ImageFolder tree (``train/`` and ``test/`` or ``val/``) into uint8 tensors.

    Images are converted to RGB and resized to ``image_size`` squared. The decoded tensors
    are cached under ``cache_dir/data`` keyed by the tree's path, file list and size.
    """
    root, test_name, class_names = image_folder_tree(
        path, "imagefolder", "imagefolder:../shared/datasets/cifar10"
    )
    files = {split: list_images(root / split, class_names) for split in ("train", test_name)}
    return _decoded_folder(
        f"imagefolder:{root.name}", root, files, class_names, cache_dir, image_size
    )


def load_tiny_imagenet(
    path: str | Path, cache_dir: str | Path | None = None, image_size: int = 32
) -> ImageDataset:
    """Tiny-ImageNet (Le & Yang, 2015), or any subset of its classes, as uint8 tensors.

    ``path`` is a folder, or a ``.tar`` holding one (extracted once under ``cache_dir/data``
    with tarfile's ``data`` filter, which refuses links and paths that leave the folder).
    Two layouts are read:

    - the official ``tiny-imagenet-200/``: ``train/<wnid>/images/*.JPEG``, and
      ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (the official test
      split has no labels, so its val split is the test split here);
    - an ImageFolder tree: ``train/<wnid>/*`` and ``test/<wnid>/*`` (or ``val/<wnid>/*``),
      e.g. ``tinyimagenet-dev100``.

    The classes are the wnid folders under ``train/``, sorted (so the old model of the
    extended-class setting learns the first half in wnid order); test images of other
    classes are left out. ``words.txt`` beside them, when present, names each class by its
    first synonym (``n01641577`` -> ``bullfrog``). Images are resized to ``image_size``.
    """
    root = Path(path).expanduser().resolve()
    if root.is_file() and tarfile.is_tarfile(root):
        root = _extracted(root, cache_dir)
    if not (root / "train").is_dir():
        raise DatasetNotFoundError(
            f"tinyimagenet:{path}: expected {root}/train/<wnid>/ (the official "
            "tiny-imagenet-200/ layout or an ImageFolder tree), or a .tar holding one, e.g. "
            "tinyimagenet:../shared/datasets/tinyimagenet-dev100.tar"
        )
    wnids = class_folders(root / "train")
    annotations = root / "val" / "val_annotations.txt"
    if annotations.exists():
        index = {wnid: i for i, wnid in enumerate(wnids)}
        rows = _annotated(annotations)
        test = [
            (inside(root, root / "val" / "images" / f), index[w])
            for f, w in sorted(rows)
            if w in index
        ]
    else:
        test_name = "test" if (root / "test").is_dir() else "val"
        test = list_images(root / test_name, wnids)
    files = {"train": list_images(root / "train", wnids), "test": test}
    dataset = _decoded_folder(
        f"tinyimagenet:{root.name}", root, files, wnids, cache_dir, image_size
    )
    dataset.class_names = _class_words(root / "words.txt", wnids)
    return dataset


def _annotated(annotations: Path) -> list[tuple[str, str]]:
    """``(file, wnid)`` of every line of Tiny-ImageNet's ``val_annotations.txt``
    (``file<TAB>wnid<TAB>box...``); a line of another shape is named with its number."""
    rows = []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise ValueError(
                f"{annotations}, line {number}: expected '<file><TAB><wnid>...', got "
                f"{line[:80]!r}; fix the line (tab-separated) or delete the file"
            )
        rows.append((fields[0], fields[1]))
    return rows


def _class_words(words: Path, wnids: list[str]) -> list[str]:
    """Each wnid's first synonym in ``words.txt`` (``wnid<TAB>name, other name``), else the
    wnid itself."""
    names = {}
    if words.exists():
        for line in words.read_text().splitlines():
            wnid, _, text = line.partition("\t")
            names[wnid] = text.split(",")[0].strip()
    return [names.get(wnid) or wnid for wnid in wnids]


def _extracted(archive: Path, cache_dir: str | Path | None) -> Path:
    """The folder a tar archive holds, extracted once into ``cache_dir/data`` (or the
    temporary folder), keyed by its name and content (SHA-256; a fraction of a second per
    100 MB): a fresh copy of the same archive, at a new path or with a new modification
    time, reuses the extraction and so the decoded tensors."""
    digest = hashlib.sha256()
    with archive.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    key = digest.hexdigest()[:16]
    base = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    target = base / "data" / f"{archive.name.split('.')[0]}-{key}"
    with exclusive(target):  # another process extracting it: wait, then find it done
        if not target.exists():
            _extract(archive, target)
    folders = [p for p in target.iterdir() if p.is_dir()]
    return folders[0] if len(folders) == 1 and not (target / "train").exists() else target


def _extract(archive: Path, target: Path) -> None:
    """Extract ``archive`` into ``target`` through ``<target>.partial`` (renamed when
    complete), with tarfile's ``data`` filter (no absolute paths, no ``..``, no links out);
    a refused or damaged archive is one ValueError naming it, and leaves nothing behind."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise ValueError(
            f"{archive} cannot be extracted ({type(err).__name__}: {err}); it is damaged or "
            "holds paths or links that leave its folder: use a complete, plain archive"
        ) from err
    os.replace(partial, target)


def _decoded_folder(
    name: str,
    root: Path,
    files: dict[str, list[tuple[Path, int]]],
    class_names: list[str],
    cache_dir: str | Path | None,
    image_size: int,
) -> ImageDataset:
    """Decode the ``train`` and test file lists of a folder dataset once, then read them
    from the cache, keyed by the folder, its files with their sizes and modification times
    (an image edited in place gets a new mtime, so it is decoded again), and ``image_size``."""
    listing = [
        (split, str(f.relative_to(root)), stat.st_size, stat.st_mtime_ns)
        for split in files
        for f, _ in files[split]
        for stat in (f.stat(),)
    ]

    def decode() -> ImageDataset:
        (train_x, train_y), (test_x, test_y) = (
            _decode(items, image_size, desc=f"decoding {root.name}/{split}")
            for split, items in files.items()
        )
        return ImageDataset(name, train_x, train_y, test_x, test_y, class_names)

    key = {"root": str(root), "size": image_size, "files": listing}
    return cached_dataset(cache_dir, "imagefolder", key, decode)


def _decode(
    items: list[tuple[Path, int]], size: int, desc: str
) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image
    from tqdm.auto import tqdm

    images = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for i, (file, _) in enumerate(tqdm(items, desc=desc, leave=False)):
        img = open_rgb(file)
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        images[i] = np.asarray(img)
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels
