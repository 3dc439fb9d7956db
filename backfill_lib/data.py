"""Datasets as uint8 tensors, the old/new training splits, and batch augmentation.

Every dataset becomes one :class:`ImageDataset`: ``(N, C, H, W)`` uint8 images and int64
labels for a train and a test split. Images are decoded once and cached as tensors, so an
epoch never touches the disk or a JPEG decoder. Names understood by :func:`load_dataset`:

- ``digits``: scikit-learn's 8x8 digits (ships in its wheel; the embedded default).
- ``cifar10`` / ``cifar100``: torchvision's ``cifar-10-batches-py`` / ``cifar-100-python``
  folders under ``data_root`` (downloaded there when ``download=True`` and online).
- ``imagefolder:PATH``: an ImageFolder tree with ``PATH/train/<class>/*`` and
  ``PATH/test/<class>/*`` (``val/`` is accepted for ``test/``), resized to ``image_size``.
- ``tinyimagenet:PATH``: Tiny-ImageNet, or any subset of its classes, from a folder or a
  ``.tar`` of one (see :func:`load_tiny_imagenet`), resized to ``image_size``.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

from .storage import config_key, load_derived, save_torch

DATA_ROOT_ENV = "BACKFILL_DATA_ROOT"
DATASETS = ("digits", "cifar10", "cifar100", "imagefolder:PATH", "tinyimagenet:PATH")
SETTINGS = ("extended-class", "extended-data", "open-class")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where they were looked for."""


@dataclass
class ImageDataset:
    """A dataset held in memory. Images ``(N, C, H, W)`` uint8, labels ``(N,)`` int64."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """A short content hash: labels, shapes and a strided sample of the pixels."""
        digest = hashlib.sha256()
        for x in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(str(tuple(x.shape)).encode())
            digest.update(x.reshape(-1)[::97].numpy().tobytes())
        return digest.hexdigest()[:16]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        x = self.train_images.float().div_(255).transpose(0, 1).flatten(1)
        return x.mean(1).tolist(), x.std(1).clamp_min(1e-3).tolist()


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
    image_size: int = 32,
) -> ImageDataset:
    """Load a dataset by name (see the module docstring for the names).

    ``data_root`` defaults to ``$BACKFILL_DATA_ROOT``. With ``cache_dir``, digits and decoded
    ImageFolder trees are cached as uint8 tensors under ``cache_dir/data`` (read once).
    """
    if data_root is None and os.environ.get(DATA_ROOT_ENV):
        data_root = os.environ[DATA_ROOT_ENV]
    if name == "digits":
        return _cached(cache_dir, "digits", {"test_fraction": 0.5, "seed": 0}, load_digits)
    if name in ("cifar10", "cifar100"):
        if data_root is None:
            raise DatasetNotFoundError(
                f"{name} needs a data root: pass --data-root DIR (or set ${DATA_ROOT_ENV}) "
                f"pointing at the folder that holds torchvision's "
                f"{_CIFAR[name]['folder']}/ (add --download to fetch it when online)."
            )
        return load_cifar(name, data_root, download=download)
    if name.startswith("imagefolder:"):
        return load_image_folder(name.split(":", 1)[1], cache_dir=cache_dir, image_size=image_size)
    if name.startswith("tinyimagenet:"):
        return load_tiny_imagenet(name.split(":", 1)[1], cache_dir=cache_dir, image_size=image_size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_digits(test_fraction: float = 0.5, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits, split once (stratified, seeded) into train and test."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    images_t = torch.from_numpy(images)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(
        name="digits",
        train_images=images_t[idx_train],
        train_labels=labels[idx_train],
        test_images=images_t[idx_test],
        test_labels=labels[idx_test],
        class_names=[str(c) for c in range(10)],
    )


_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": ("batches.meta", "label_names"),
        "labels": "labels",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": ("meta", "fine_label_names"),
        "labels": "fine_labels",
    },
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what CIFAR's files hold: dicts, lists, strings, numbers
    and numpy arrays. Any other global (``os.system``, ``builtins.eval``...) is refused, so a
    crafted file under ``--data-root`` cannot run code."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in Python 3's protocol-2 pickles
        **{
            (f"numpy.{core}.multiarray", "_reconstruct"): _multiarray._reconstruct
            for core in ("core", "_core")
        },
        **{
            (f"numpy.{core}.numeric", "_frombuffer"): _numeric._frombuffer
            for core in ("core", "_core")
        },
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: CIFAR files hold only lists, strings and "
                "numpy arrays"
            )
        return self.ALLOWED[module, name]


def load_cifar_pickle(path: Path) -> dict:
    """One file of torchvision's CIFAR python layout, read without running code from it."""
    try:
        with open(path, "rb") as fh:
            entry = _CifarUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(
            f"{path} is not a CIFAR batch file ({err}); replace it with the file from the "
            "official CIFAR python archive"
        ) from err
    if not isinstance(entry, dict):
        raise ValueError(f"{path} is not a CIFAR batch file (it holds a {type(entry).__name__})")
    return entry


def load_cifar(name: str, data_root: str | Path, download: bool = False) -> ImageDataset:
    """Read CIFAR-10/100 from torchvision's python-pickle layout under ``data_root``."""
    spec = _CIFAR[name]
    folder = Path(data_root) / spec["folder"]
    files = [folder / f for f in (*spec["train"], *spec["test"], spec["meta"][0])]
    if not all(f.exists() for f in files) and download:
        _download_cifar(name, data_root)
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: {folder} lacks {', '.join(missing)}. Put torchvision's {spec['folder']}/ "
            f'there (e.g. python -c "import torchvision; torchvision.datasets.'
            f"{'CIFAR10' if name == 'cifar10' else 'CIFAR100'}('{data_root}', download=True)\" "
            "on a machine that is online), or pass --download."
        )

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        data, labels = [], []
        for fname in names:
            entry = load_cifar_pickle(folder / fname)
            data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry[spec["labels"]])
        return torch.from_numpy(np.concatenate(data)), torch.tensor(labels, dtype=torch.int64)

    class_names = list(load_cifar_pickle(folder / spec["meta"][0])[spec["meta"][1]])
    train_x, train_y = read(spec["train"])
    test_x, test_y = read(spec["test"])
    return ImageDataset(name, train_x, train_y, test_x, test_y, class_names)


def _download_cifar(name: str, data_root: str | Path) -> None:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    try:
        cls(str(data_root), train=True, download=True)
    except Exception as err:  # network errors come in many types
        raise DatasetNotFoundError(
            f"could not download {name} into {data_root} ({err}). This machine may be "
            "offline: copy torchvision's CIFAR folder there by hand."
        ) from err


def load_image_folder(
    path: str | Path, cache_dir: str | Path | None = None, image_size: int = 32
) -> ImageDataset:
    """Decode an ImageFolder tree (``train/`` and ``test/`` or ``val/``) into uint8 tensors.

    Images are converted to RGB and resized to ``image_size`` squared. The decoded tensors
    are cached under ``cache_dir/data`` keyed by the tree's path, file list and size.
    """
    root = Path(path).expanduser().resolve()
    test_name = "test" if (root / "test").is_dir() else "val"
    if not (root / "train").is_dir() or not (root / test_name).is_dir():
        raise DatasetNotFoundError(
            f"imagefolder:{path}: expected {root}/train/<class>/* and {root}/test/<class>/* "
            "(or val/). Check the path, e.g. imagefolder:../shared/datasets/cifar10."
        )
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    files = {split: _list_images(root / split, class_names) for split in ("train", test_name)}
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
    wnids = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    annotations = root / "val" / "val_annotations.txt"
    if annotations.exists():
        index = {wnid: i for i, wnid in enumerate(wnids)}
        rows = [line.split("\t")[:2] for line in annotations.read_text().splitlines() if line]
        test = [(root / "val" / "images" / f, index[w]) for f, w in sorted(rows) if w in index]
    else:
        test_name = "test" if (root / "test").is_dir() else "val"
        test = _list_images(root / test_name, wnids)
    files = {"train": _list_images(root / "train", wnids), "test": test}
    dataset = _decoded_folder(
        f"tinyimagenet:{root.name}", root, files, wnids, cache_dir, image_size
    )
    dataset.class_names = _class_words(root / "words.txt", wnids)
    return dataset


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
    temporary folder), keyed by the archive's path, size and modification time."""
    stat = archive.stat()
    key = config_key({"archive": str(archive), "size": stat.st_size, "mtime": stat.st_mtime_ns})
    base = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    target = base / "data" / f"{archive.name.split('.')[0]}-{key}"
    if not target.exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        os.replace(partial, target)
    inside = [p for p in target.iterdir() if p.is_dir()]
    return inside[0] if len(inside) == 1 and not (target / "train").exists() else target


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
    return _cached(cache_dir, "imagefolder", key, decode)


def _cached(
    cache_dir: str | Path | None, kind: str, key: dict, build: Callable[[], ImageDataset]
) -> ImageDataset:
    """``build()`` once, then read the uint8 tensors from ``cache_dir/data/<kind>-<key>.pt``."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / "data" / f"{kind}-{config_key(key)}.pt"
    stored = load_derived(path)
    if stored is not None:
        return ImageDataset(**stored)
    dataset = build()
    save_torch(vars(dataset), path)
    return dataset


def _list_images(split_dir: Path, class_names: list[str]) -> list[tuple[Path, int]]:
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


def _decode(
    items: list[tuple[Path, int]], size: int, desc: str
) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image
    from tqdm.auto import tqdm

    images = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for i, (file, _) in enumerate(tqdm(items, desc=desc, leave=False)):
        try:
            with Image.open(file) as img:
                img = img.convert("RGB")
                if img.size != (size, size):
                    img = img.resize((size, size), Image.BILINEAR)
                images[i] = np.asarray(img)
        except (OSError, ValueError) as err:  # unreadable, truncated or not an image
            raise ValueError(
                f"{file}: cannot decode this image ({err}); replace or delete it"
            ) from err
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


@dataclass(frozen=True)
class Split:
    """Which training images and classes each model learns from, and which classes are tested.

    ``old_indices`` / ``new_indices`` index the training split; ``old_classes`` is the number
    of classes the old classifier has (labels of old training images are < old_classes);
    ``test_classes`` lists the classes kept in the query/gallery set.
    """

    setting: str
    old_indices: torch.Tensor
    new_indices: torch.Tensor
    old_classes: int
    new_classes: int
    test_classes: tuple[int, ...]


def make_split(dataset: ImageDataset, setting: str = "extended-class", seed: int = 0) -> Split:
    """The old/new training split of METHOD.md section 2.

    - ``extended-class``: old model on the training images of the first half of the classes,
      new model on all classes; every class is tested.
    - ``extended-data``: old model on a seeded random half of the training images of all
      classes; new model on all.
    - ``open-class``: the last 20% of the classes (at least 2) are held out from both models
      and are the only ones tested; old on the first half of the rest, new on all the rest.
    """
    labels = dataset.train_labels
    n_cls = dataset.num_classes
    everything = torch.arange(len(labels))
    if setting == "extended-class":
        old_cls = n_cls // 2
        return Split(
            setting, everything[labels < old_cls], everything, old_cls, n_cls, tuple(range(n_cls))
        )
    if setting == "extended-data":
        gen = torch.Generator().manual_seed(seed)
        half = torch.randperm(len(labels), generator=gen)[: len(labels) // 2].sort().values
        return Split(setting, half, everything, n_cls, n_cls, tuple(range(n_cls)))
    if setting == "open-class":
        held_out = max(2, round(0.2 * n_cls))
        seen = n_cls - held_out
        old_cls = seen // 2
        return Split(
            setting,
            everything[labels < old_cls],
            everything[labels < seen],
            old_cls,
            seen,
            tuple(range(seen, n_cls)),
        )
    raise ValueError(f"unknown setting {setting!r}; choose one of {', '.join(SETTINGS)}")


def evaluation_set(dataset: ImageDataset, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """The query/gallery images and labels of a split (the test images of its test classes)."""
    keep = torch.isin(dataset.test_labels, torch.tensor(split.test_classes))
    return dataset.test_images[keep], dataset.test_labels[keep]


def validation_holdout(
    labels: torch.Tensor, fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split training indices into (fit, validation), stratified by class and seeded.

    Hyperparameters are chosen on the validation part, never on the reported test split.
    """
    gen = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for cls in labels.unique():
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = max(1, round(fraction * len(idx)))
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard small-image augmentation on a uint8 or float batch ``(B, C, H, W)``.

    Random translation by up to H/8 pixels (zero padding, the CIFAR "pad 4 and crop 32"
    recipe) and, for colour images, a random horizontal flip (digits are not flipped).
    """
    b, c, h, w = images.shape
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dev = images.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None]).view(b, 1, h, 1).expand(b, c, h, w)
    cols = (dx[:, None] + torch.arange(w, device=dev)[None]).view(b, 1, 1, w).expand(b, c, h, w)
    batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
    chan = torch.arange(c, device=dev).view(1, c, 1, 1)
    out = padded[batch, chan, rows, cols]
    if c == 3:
        flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
        out[flip] = out[flip].flip(-1)
    return out
