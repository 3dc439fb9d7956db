"""Image files on disk: an ImageFolder tree's layout, its file list, one image decoded.

The folder datasets (:mod:`.folders`, decoded once into tensors) and the files left on disk
(:mod:`.files`, decoded as training goes) both read images through these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DATA_ROOT_ENV",
    "IMAGE_SUFFIXES",
    "DatasetNotFoundError",
    "image_folder_tree",
    "list_images",
    "open_rgb",
]

DATA_ROOT_ENV = "BACKFILL_DATA_ROOT"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")


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
    return root, test_name, sorted(p.name for p in (root / "train").iterdir() if p.is_dir())


def open_rgb(file: Path) -> Image.Image:
    """The image in ``file``, decoded and converted to RGB; a ValueError naming the file
    when it cannot be read (unreadable, truncated or not an image)."""
    from PIL import Image

    try:
        with Image.open(file) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"{file}: cannot decode this image ({err}); replace or delete it") from err


def list_images(split_dir: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """``(file, label)`` of every image under ``split_dir/<class>/`` (sub-folders too), in
    class order, then file name order (torchvision's ImageFolder rule)."""
    from torchvision.datasets.folder import make_dataset

    missing = [c for c in class_names if not (split_dir / c).is_dir()]
    if missing:
        raise DatasetNotFoundError(f"{split_dir} has no folder for class {missing[0]!r}")
    index = {c: i for i, c in enumerate(class_names)}
    try:
        items = make_dataset(str(split_dir), index, extensions=IMAGE_SUFFIXES)
    except FileNotFoundError as err:
        raise DatasetNotFoundError(f"{split_dir}: {err}") from err
    return [(Path(f), label) for f, label in items]
