"""CIFAR-10 and CIFAR-100 from torchvision's python-pickle layout, read safely.

The batch files are pickles; :class:`_CifarUnpickler` builds only the lists, strings and
numpy arrays they hold, so a crafted file under ``--data-root`` cannot run code.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

from .dataset import ImageDataset
from .images import DATA_ROOT_ENV, DatasetNotFoundError

__all__ = ["load_cifar"]


_CIFAR: dict[str, dict] = {
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
            (f"numpy.{core}.numeric", "_frombuffer"): _numeric._frombuffer  # type: ignore[attr-defined]
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


def _load_cifar_pickle(path: Path) -> dict:
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


def load_cifar(name: str, data_root: str | Path | None, download: bool = False) -> ImageDataset:
    """Read CIFAR-10/100 from torchvision's python-pickle layout under ``data_root``."""
    spec = _CIFAR[name]
    if data_root is None:
        raise DatasetNotFoundError(
            f"{name} needs a data root: pass --data-root DIR (or set ${DATA_ROOT_ENV}) "
            f"pointing at the folder that holds torchvision's "
            f"{spec['folder']}/ (add --download to fetch it when online)."
        )
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

    meta = folder / spec["meta"][0]
    class_names = [str(c) for c in _field(_load_cifar_pickle(meta), spec["meta"][1], meta, name)]

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batches = [_batch(folder / f, spec["labels"], len(class_names), name) for f in names]
        data, labels = zip(*batches, strict=True)
        return torch.from_numpy(np.concatenate(data)), torch.from_numpy(np.concatenate(labels))

    train_x, train_y = read(spec["train"])
    test_x, test_y = read(spec["test"])
    return ImageDataset(name, train_x, train_y, test_x, test_y, class_names)


def _field(entry: dict, key: str, path: Path, name: str) -> Any:
    """``entry[key]``, or an error naming the file that lacks it."""
    if key not in entry:
        raise ValueError(
            f"{path} has no {key!r}: it is not a {name} file; replace it with the file from "
            "the official CIFAR python archive"
        )
    return entry[key]


def _batch(path: Path, label_key: str, classes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64, checked:
    rows of 3,072 bytes, one label per image, each label one of the ``classes``."""
    entry = _load_cifar_pickle(path)
    data = np.asarray(_field(entry, "data", path, name))
    labels = np.asarray(_field(entry, label_key, path, name))
    fix = "replace it with the file from the official CIFAR python archive"
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: data of shape {data.shape} and type {data.dtype}, not rows of 3,072 "
            f"bytes (32x32 RGB); {fix}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: {len(data)} images but labels of shape {labels.shape}; {fix}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < classes:
        raise ValueError(
            f"{path}: labels from {labels.min()} to {labels.max()}, outside the {classes} "
            f"classes of {name}; {fix}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


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
