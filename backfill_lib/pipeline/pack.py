"""A real-image pack (``backfill pack``): a trained old and new model's embeddings of real
photographs, small enough to ship with the course, so that online backfilling is shown on
them in seconds, offline, with no model trained.

From one :class:`~.experiment.Experiment` (a dataset, a setting, its old and new models) a
pack holds:

- ``test_<model>``: each model's embeddings of every test image ``(N, d)`` (the old and new
  models, and any compatible one packed), stored in fp16 and renormalised to unit rows when
  read;
- ``labels (N,)`` and ``uncertainty (N,)``: the class ids and the old classifier's entropy
  (float32: what the uncertainty order sorts by, so that it is the experiment's order);
- ``train_old``, ``train_new``, ``train_labels``: the old and new models' embeddings of a
  class-balanced sample of the new model's training images, to fit psi on;
- ``thumbnails (T, H, W, 3)`` uint8 and ``thumbnail_items (T,)``: the pictures of a
  class-balanced sample of the test images and their rows, stored as one JPEG mosaic;
- ``meta``: where it came from (dataset, setting, the models and how they were trained,
  psi's options, the command) and the numbers it must reproduce: each model's mAP on the
  test images (and a compatible model's against the old gallery), from the stored
  embeddings.

The file is an ``.npz`` of plain arrays (no pickle), the meta a JSON string in it.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..core.metrics import one_space_curve
from ..core.orders import softmax_entropy
from ..storage import atomic_write
from .experiment import Experiment

__all__ = [
    "PACK_FORMAT",
    "SHIPPED_PACKS",
    "Pack",
    "build_pack",
    "load_pack",
    "pack_path",
    "save_pack",
]

PACK_FORMAT = "backfill-pack/1"
SHIPPED_PACKS = Path(__file__).resolve().parents[1] / "packs"  # the packs the course ships
JPEG_QUALITY = 90
MOSAIC_COLUMNS = 50
FITTED_ON = ("old", "new")  # the models whose training-sample embeddings psi is fitted on


@dataclass(frozen=True)
class Pack:
    """A pack's arrays and its meta. ``test[model] (N, d)`` and ``train[model] (M, d)``:
    float32 unit rows (``train``: the old and new models only); ``labels (N,)``,
    ``train_labels (M,)``: int64; ``uncertainty (N,)``: float32; ``thumbnails (T, H, W, 3)``
    uint8 pictures of the test images ``thumbnail_items (T,)``."""

    test: dict[str, torch.Tensor]
    train: dict[str, torch.Tensor]
    labels: torch.Tensor
    train_labels: torch.Tensor
    uncertainty: torch.Tensor
    thumbnails: np.ndarray
    thumbnail_items: np.ndarray
    meta: dict

    def check(self) -> None:
        """Every array agrees with the others and with the meta, or a ValueError says which."""
        if self.meta.get("format") != PACK_FORMAT:
            raise ValueError(f"pack: format {self.meta.get('format')!r}, expected {PACK_FORMAT!r}")
        if set(FITTED_ON) - set(self.test) or set(self.train) != set(FITTED_ON):
            raise ValueError(
                f"pack: test embeddings of {sorted(self.test)} and training embeddings of "
                f"{sorted(self.train)}; both need the old and the new model (training: only them)"
            )
        n, m = len(self.labels), len(self.train_labels)
        rows = {f"test[{k}]": (len(x), n) for k, x in self.test.items()}
        rows |= {f"train[{k}]": (len(x), m) for k, x in self.train.items()}
        rows["uncertainty"] = (len(self.uncertainty), n)
        for name, (got, expected) in rows.items():
            if got != expected:
                raise ValueError(f"pack: {name} has {got} rows, its labels {expected}")
        for model in FITTED_ON:
            if self.train[model].shape[1] != self.test[model].shape[1]:
                raise ValueError(f"pack: the {model} model's training and test dims differ")
        if len(self.thumbnails) != len(self.thumbnail_items) or (self.thumbnail_items >= n).any():
            raise ValueError("pack: thumbnail_items must name one test image per thumbnail")


def _balanced_sample(labels: torch.Tensor, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` rows of each class (all of a smaller class), seeded, in ascending order."""
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    rows = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(rows))


def _pictures(images: object, rows: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 pictures of ``rows`` of a test set (grey ones repeated)."""
    pictures = []
    for row in rows:
        stored = images[int(row)]  # type: ignore[index]  # (C, H, W), or (image, label)
        chw = stored if isinstance(stored, torch.Tensor) else stored[0]
        pictures.append(chw.expand(3, -1, -1).permute(1, 2, 0).numpy())
    return np.stack(pictures)


def _mosaic_jpeg(thumbnails: np.ndarray) -> np.ndarray:
    """The thumbnails tiled row-major, ``MOSAIC_COLUMNS`` wide, as JPEG bytes ``(B,)``."""
    t, h, w, _ = thumbnails.shape
    rows = -(-t // MOSAIC_COLUMNS)
    mosaic = np.zeros((rows * h, MOSAIC_COLUMNS * w, 3), np.uint8)
    for i, picture in enumerate(thumbnails):
        r, c = divmod(i, MOSAIC_COLUMNS)
        mosaic[r * h : (r + 1) * h, c * w : (c + 1) * w] = picture
    buffer = io.BytesIO()
    Image.fromarray(mosaic).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def _unmosaic(jpeg: np.ndarray, count: int, size: tuple[int, int]) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg.tobytes())) as image:
        mosaic = np.asarray(image.convert("RGB"))
    h, w = size
    return np.stack(
        [
            mosaic[r * h : (r + 1) * h, c * w : (c + 1) * w]
            for r, c in (divmod(i, MOSAIC_COLUMNS) for i in range(count))
        ]
    )


def build_pack(
    experiment: Experiment,
    models: tuple[str, ...] = FITTED_ON,
    train_per_class: int = 250,
    thumbnails_per_class: int = 100,
    seed: int = 0,
    command: str = "",
) -> Pack:
    """The pack of ``experiment``'s ``models`` (the old and new ones, and any compatible
    one; each trained or loaded from its cache): every test image's embeddings,
    ``train_per_class`` training images of each class (old and new model), and
    ``thumbnails_per_class`` pictures of each test class. The meta's mAPs are computed from
    the fp16 embeddings the file stores."""
    images, labels = experiment.data.test_data
    train_labels = experiment.data.training_data("new")[1]
    sample = torch.from_numpy(_balanced_sample(train_labels, train_per_class, seed))
    thumbnail_items = _balanced_sample(labels, thumbnails_per_class, seed)
    models = tuple(dict.fromkeys((*FITTED_ON, *models)))
    test = {m: _fp16_rows(experiment.embeddings(m)) for m in models}
    train = {m: _fp16_rows(experiment.embeddings(m, "train")[sample]) for m in FITTED_ON}
    old_logits = experiment.model("old").classifier(experiment.embeddings("old")).detach()
    config = experiment.config
    meta = {
        "format": PACK_FORMAT,
        "dataset": config.dataset,
        "setting": config.setting,
        "class_names": list(experiment.data.dataset.class_names),
        "models": experiment.model_summary(models),
        "checkpoints": {m: experiment.artefacts.checkpoint_path(m).name for m in models},
        "precision": {"old": config.old.precision, "new": config.new.precision},
        "options": config.options,
        "transformations": {m: asdict(c) for m, c in config.transformations.items()},
        "command": command,
        "sample_seed": seed,
        "mAP": {  # each model's own retrieval, and the compatible ones' against the old gallery
            f"{m}/{g}": float(one_space_curve(test[m], test[g], labels).mAP[0])
            for m in models
            for g in dict.fromkeys((m, "old"))
            if not (m == "new" and g == "old")
        },
    }
    return Pack(
        test,
        train,
        labels,
        train_labels[sample],
        softmax_entropy(old_logits),
        _pictures(images, thumbnail_items),
        thumbnail_items,
        meta,
    )


def _fp16_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as the pack stores it (fp16) and reads it back (float32 unit rows)."""
    return F.normalize(x.half().float(), dim=1)


def save_pack(pack: Pack, path: str | Path) -> Path:
    """Write ``pack`` to ``path`` (``.npz``, atomically): embeddings in fp16."""
    pack.check()
    arrays = {f"test_{m}": x.numpy().astype(np.float16) for m, x in pack.test.items()}
    arrays |= {f"train_{m}": x.numpy().astype(np.float16) for m, x in pack.train.items()}
    arrays |= {
        "labels": pack.labels.numpy().astype(np.int16),
        "train_labels": pack.train_labels.numpy().astype(np.int16),
        "uncertainty": pack.uncertainty.numpy().astype(np.float32),
        "thumbnail_items": pack.thumbnail_items.astype(np.int32),
        "thumbnails_jpeg": _mosaic_jpeg(pack.thumbnails),
    }
    meta = {**pack.meta, "thumbnail_size": list(pack.thumbnails.shape[1:3])}
    arrays["meta"] = np.array(json.dumps(meta))

    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:
            np.savez_compressed(file, **arrays)  # type: ignore[arg-type]  # numpy's stub

    return atomic_write(path, write)


def pack_path(name: str | Path) -> Path:
    """The pack file ``name`` names: a path to one, or the name of a pack the library ships
    (``cifar10`` is ``backfill_lib/packs/cifar10.npz``); a FileNotFoundError lists those."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = SHIPPED_PACKS / f"{name}.npz"
    if path.suffix == "" and len(path.parts) == 1 and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED_PACKS.glob("*.npz"))) or "none"
    raise FileNotFoundError(
        f"{name}: no such pack file, nor a pack the library ships ({names}); "
        "`backfill pack --out FILE` writes one"
    )


def load_pack(path: str | Path) -> Pack:
    """The pack in ``path`` (a file, or a shipped pack's name: :func:`pack_path`), checked
    (embeddings as float32 unit rows)."""
    path = pack_path(path)
    with np.load(path, allow_pickle=False) as stored:
        needed = {"labels", "train_labels", "uncertainty", "thumbnail_items", "thumbnails_jpeg"}
        missing = {*needed, "meta"} - set(stored.files)
        if missing:
            raise ValueError(f"{path} is not a pack: it lacks {', '.join(sorted(missing))}")
        meta = json.loads(str(stored["meta"]))
        models = [m for m in meta["models"] if f"test_{m}" in stored.files]

        def unit_rows(name: str) -> torch.Tensor:
            return F.normalize(torch.from_numpy(stored[name].astype(np.float32)), dim=1)

        test = {m: unit_rows(f"test_{m}") for m in models}
        train = {m: unit_rows(f"train_{m}") for m in FITTED_ON if f"train_{m}" in stored.files}
        items = stored["thumbnail_items"].astype(np.int64)
        size = tuple(meta["thumbnail_size"])
        pack = Pack(
            test,
            train,
            torch.from_numpy(stored["labels"].astype(np.int64)),
            torch.from_numpy(stored["train_labels"].astype(np.int64)),
            torch.from_numpy(stored["uncertainty"]),
            _unmosaic(stored["thumbnails_jpeg"], len(items), size),
            items,
            meta,
        )
    pack.check()
    return pack
