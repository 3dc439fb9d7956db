"""Image files on disk: an ImageFolder tree's layout, its file list, one image decoded.

The folder datasets (:mod:`.folders`, decoded once into tensors) and the files left on disk
(:mod:`.files`, decoded as training goes) both read images through these functions, and so
share their guarantees:

- a file a dataset *names* (Tiny-ImageNet's annotation file) must resolve inside the
  dataset's folder (:func:`inside`), or it is refused with the path named;
- a class folder is walked following symbolic links, each real folder once and never one
  that holds the class folder (a link back up is a loop): a loop cannot repeat images, and
  a link to a folder elsewhere is followed like a folder;
- every image is decoded faithfully to 8-bit RGB (:func:`to_rgb`: 16-bit and float images
  are scaled, not clipped), and one past :data:`MAX_IMAGE_PIXELS` is refused with one line.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DATA_ROOT_ENV",
    "IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "DatasetNotFoundError",
    "class_folders",
    "image_folder_tree",
    "image_dimensions",
    "inside",
    "list_images",
    "open_rgb",
    "to_rgb",
]

DATA_ROOT_ENV = "BACKFILL_DATA_ROOT"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
MAX_IMAGE_PIXELS = 8192 * 8192  # larger images are refused: a decompression bomb or a mistake


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where they were looked for."""


def image_folder_tree(path: str | Path, scheme: str, example: str) -> tuple[Path, str, list[str]]:
    """An ImageFolder tree's root, the name of its test split's folder (``test`` or ``val``)
    and its classes (the folders under ``train/``, sorted); an error naming the expected
    layout (``scheme:path``, and an ``example``) when ``path`` is not one."""
    root = Path(path).expanduser().resolve()
    test_name = "test" if (root / "test").is_dir() else "val"
    if not (root / "train").is_dir() or not (root / test_name).is_dir():
        raise DatasetNotFoundError(
            f"{scheme}:{path}: expected {root}/train/<class>/* and {root}/test/<class>/* "
            f"(or val/). Check the path, e.g. {example}."
        )
    return root, test_name, class_folders(root / "train")


def class_folders(train: Path) -> list[str]:
    """The class folders under ``train`` (sorted), or an error when it holds none."""
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not classes:
        raise DatasetNotFoundError(
            f"{train} holds no class folders: put each class's images in {train}/<class>/"
        )
    return classes


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, when it lies inside the dataset folder ``root``; else a ValueError
    naming it (a dataset may not make the loader read files outside it)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(
            f"{path} points outside the dataset folder {root}: a dataset may only name its "
            "own files; fix the file that names it"
        )
    return resolved


def _walk_once(folder: Path) -> list[tuple[str, list[str]]]:
    """``os.walk(folder, followlinks=True)`` that enters each real folder once and never a
    folder that holds ``folder`` itself (a link back up is a loop): ``(folder, file names)``
    of each folder visited."""
    start = os.path.realpath(folder)
    seen = {start}
    found = []
    for current, folders, files in os.walk(folder, followlinks=True):
        found.append((current, files))
        kept = []
        for name in folders:
            real = os.path.realpath(os.path.join(current, name))
            if real not in seen and not start.startswith(real + os.sep):
                seen.add(real)
                kept.append(name)
        folders[:] = kept  # os.walk descends only into these
    return found


def list_images(split_dir: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """``(file, label)`` of every image under ``split_dir/<class>/`` (sub-folders too), in
    class order, then folder and file name order (torchvision's ImageFolder rule)."""
    missing = [c for c in class_names if not (split_dir / c).is_dir()]
    if missing:
        raise DatasetNotFoundError(f"{split_dir} has no folder for class {missing[0]!r}")
    items = []
    for label, name in enumerate(class_names):
        found = [
            (Path(folder, file), label)
            for folder, files in sorted(_walk_once(split_dir / name))
            for file in sorted(files)
            if file.lower().endswith(IMAGE_SUFFIXES)
        ]
        if not found:
            raise DatasetNotFoundError(
                f"{split_dir / name} holds no image ({', '.join(IMAGE_SUFFIXES)}): add its "
                "images or remove the class folder"
            )
        items += found
    return items


@contextmanager
def _opened(file: Path) -> Iterator[Image.Image]:
    """``file`` opened by Pillow (header read, pixels not yet), its size checked; a ValueError
    naming the file when it is not an image or is past :data:`MAX_IMAGE_PIXELS`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(file)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        opened = None  # past Pillow's own limit: past ours too
    except (OSError, ValueError) as err:
        raise ValueError(f"{file}: cannot decode this image ({err}); replace or delete it") from err
    if opened is None or opened.width * opened.height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{file}: more than {MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or far larger "
            "than any model here reads); shrink or delete it"
        )
    with opened:
        yield opened


def image_dimensions(file: Path) -> tuple[int, int]:
    """``(width, height)`` of the image in ``file``, from its header (checked as
    :func:`open_rgb` checks it)."""
    with _opened(file) as opened:
        return opened.size


def open_rgb(file: Path) -> Image.Image:
    """The image in ``file``, decoded and converted to 8-bit RGB (:func:`to_rgb`); a
    ValueError naming the file when it cannot be read (unreadable, truncated, not an image,
    or past :data:`MAX_IMAGE_PIXELS`)."""
    with _opened(file) as opened:
        try:
            return to_rgb(opened)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"{file}: cannot decode this image ({err}); replace or delete it"
            ) from err


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, its range kept: 16-bit integers (0-65535) and wider integer or
    float images are scaled to 0-255 (a float image in [0, 1] by 255, others from their
    minimum and maximum), never clipped; palette, greyscale and alpha as Pillow converts them."""
    from PIL import Image

    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    low, high = float(values.min()), float(values.max())
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif low >= 0.0 and high <= 65535.0 and image.mode != "F":
        scaled = values * (255.0 / 65535.0)  # the 16-bit range
    else:
        scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.rint(scaled).astype(np.uint8)).convert("RGB")
