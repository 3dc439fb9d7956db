"""Your own upgrade: online backfilling on the embeddings of any two models.

A practitioner about to upgrade a retrieval system has both models and a labelled sample of
the gallery. Embedded by both models, that sample is all the methods of the online family
need: psi (``rt``), psi with the metric-compatible loss (``rt+mc``), psi in closed form
(``rt-ls``, ``rt-procrustes``) and FCT's and FastFill's h without side-information
(``fct``, ``fastfill``) are fitted on embeddings alone, and DRM needs nothing fitted.
:func:`evaluate_upgrade` splits the items into a *training* part (psi is fitted on it) and
an *evaluation* part (every item a query once, the rest its gallery, leave-one-out), and
evaluates every method along the backfill exactly as :class:`~.experiment.Experiment` does
for the models it trains (the same evaluator, order, summaries and intervals:
:mod:`.summary`).

Relevance is by label: two items are relevant to each other when they share one (a class,
a product id, a landmark id). Query-specific relevance lists are not supported: the
leave-one-out protocol needs relevance to be symmetric, which labels give.

Files (``backfill evaluate``): ``.npy``, or ``.safetensors`` holding one tensor (or one
named ``embeddings`` / ``labels``). safetensors rather than Parquet: it stores an ``(N, d)``
array as one typed tensor (Parquet needs a list column per row and pyarrow, tens of MB),
loads without pickle (safe for files from elsewhere), and is what the torch ecosystem
exports (``safetensors.torch.save_file({"embeddings": x}, path)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.merge import TwoPartEmbeddings
from ..core.metrics import Curve, evaluate_curve
from ..core.orders import make_order
from ..core.transformation import (
    Transformation,
    TransformConfig,
)
from ..methods.registry import GalleryEmbeddings, get_method
from ..storage import load_torch, save_torch
from ..training.transformation import fit_transformation
from .summary import add_intervals, bootstrap_curves, results_record, summarise_methods

__all__ = [
    "UPGRADE_METHODS",
    "UpgradeReport",
    "check_upgrade_inputs",
    "embed_image_folder",
    "evaluate_upgrade",
    "load_psi",
    "read_array",
    "save_psi",
    "split_items",
]

REFERENCES = ("old/old", "new/new", "new/old")  # new/old only where the two dims agree
# the methods two models' embeddings suffice for: nothing but a map between them is fitted
UPGRADE_METHODS = ("drm", "rt", "rt+mc", "rt-ls", "rt-procrustes", "fct", "fastfill")
PSI_FORMAT = "backfill-psi/1"
NORM_TOLERANCE = 1e-3
MIN_TRAINING_ITEMS = 20


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`evaluate_upgrade` returns: the ``results.json`` dictionary (random
    order), each fitted transformation (``{"rt": Transformation, ...}``), and what was
    evaluated, for :class:`~backfill_lib.explorer.BackfillExplorer`: each method's two parts
    on the evaluation part, its backfill order ``(M,)``, labels ``(M,)`` and rows in your
    arrays ``(M,)``."""

    results: dict
    transformations: dict[str, Transformation]
    parts: dict[str, TwoPartEmbeddings]
    order: np.ndarray
    labels: torch.Tensor
    items: np.ndarray


def read_array(path: str | Path, kind: str, name: str) -> np.ndarray:
    """The array in ``path`` (``.npy``, or ``.safetensors`` with one tensor or one named
    ``kind``: ``embeddings`` or ``labels``); ``name`` (``--old``...) names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} {path}: no such file")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        if len(tensors) == 1:
            return next(iter(tensors.values()))
        if kind in tensors:
            return tensors[kind]
        raise ValueError(
            f"{name} {path} holds tensors {', '.join(sorted(tensors))}: keep one, or name the "
            f"one to use {kind!r}"
        )
    raise ValueError(f"{name} {path}: give a .npy or a .safetensors file")


def check_upgrade_inputs(
    old: np.ndarray,
    new: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    names: tuple[str, str, str] = ("old", "new", "labels"),
) -> None:
    """Every problem of the inputs that would spoil the evaluation, as one line naming the
    input and the fix, before any work: shapes and item counts, NaN, infinite or zero rows,
    rows that are not unit vectors, a class with one item in the evaluation part, too few
    training items."""
    old_name, new_name, labels_name = names
    for name, x in ((old_name, old), (new_name, new)):
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"{name}: expected a 2-D float array (items, dims), got {x.dtype} "
                f"of shape {x.shape}"
            )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{labels_name}: expected a 1-D integer array of class ids, got "
            f"{labels.dtype} of shape {labels.shape}"
        )
    if not len(old) == len(new) == len(labels) == len(train):
        raise ValueError(
            f"{old_name} has {len(old)} rows, {new_name} {len(new)}, {labels_name} {len(labels)}"
            f", the split {len(train)}: all must describe the same items, in the same order"
        )
    for name, x in ((old_name, old), (new_name, new)):
        bad = ~np.isfinite(x).all(1)
        if bad.any():
            raise ValueError(
                f"{name}: row {int(np.flatnonzero(bad)[0])} ({int(bad.sum())} rows "
                "in all) holds NaN or infinite values; export those items again"
            )
        norms = np.linalg.norm(x, axis=1)
        if (norms == 0).any():
            raise ValueError(
                f"{name}: row {int(np.flatnonzero(norms == 0)[0])} is all zeros "
                f"({int((norms == 0).sum())} rows in all); export those items again"
            )
        if np.abs(norms - 1).max() > NORM_TOLERANCE:
            raise ValueError(
                f"{name}: rows are not unit vectors (norms {norms.min():.3g} to "
                f"{norms.max():.3g}); retrieval here is by cosine: divide each row by its norm, "
                "or pass --normalise"
            )
    evaluation = labels[~train]
    if len(evaluation) < 2:
        raise ValueError(
            f"{len(evaluation)} items in the evaluation part: give the split some items to "
            "evaluate on (0 in --split, or a smaller --train-fraction)"
        )
    classes, counts = np.unique(evaluation, return_counts=True)
    if (counts < 2).any():
        lonely = classes[counts < 2]
        raise ValueError(
            f"{labels_name}: class {int(lonely[0])} ({len(lonely)} classes in all) has one item "
            "in the evaluation part, so as a query it has nothing to find: give it more items, "
            "or leave it out"
        )
    if train.sum() < MIN_TRAINING_ITEMS:
        raise ValueError(
            f"{int(train.sum())} items in the training part: psi needs at least "
            f"{MIN_TRAINING_ITEMS}; give more items or a larger --train-fraction"
        )


def split_items(labels: np.ndarray, train_fraction: float, seed: int = 0) -> np.ndarray:
    """A seeded split into a training part (``True``) and an evaluation part, class by
    class: ``round(train_fraction * n)`` of each class's ``n`` items, at most ``n - 2`` (so
    that every class keeps two items to evaluate on), to train on."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train fraction {train_fraction}: give a number between 0 and 1")
    rng = np.random.default_rng(seed)
    train = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        items = rng.permutation(np.flatnonzero(labels == label))
        train[items[: min(round(train_fraction * len(items)), len(items) - 2)]] = True
    return train


def evaluate_upgrade(
    old: np.ndarray | torch.Tensor,
    new: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    train: np.ndarray,
    methods: tuple[str, ...] = UPGRADE_METHODS,
    psi_options: dict[str, dict] | None = None,
    steps: int = 20,
    order_seed: int = 0,
    options_source: str = "",
    names: tuple[str, str, str] = ("old", "new", "labels"),
) -> UpgradeReport:
    """The online methods along a random backfill of the evaluation part, from two models'
    embeddings of the same items (``backfill evaluate``; docs/upgrade.md).

    ``old (N, d_o)``, ``new (N, d_n)`` (unit rows), ``labels (N,)`` and ``train (N,)``
    (``True``: the training part, which psi is fitted on). Every method of ``methods`` and
    the references old/old, new/new and (where the dims agree) new/old. ``psi_options``: per
    transformation method, :class:`TransformConfig` fields that replace the registry's (an
    options file's ``transformations``); ``options_source`` says where they came from, for
    ``results.json``."""
    old, new, labels = (np.asarray(x) for x in (old, new, labels))
    train = np.asarray(train, dtype=bool)
    check_upgrade_inputs(old, new, labels, train, names)
    for method in methods:
        if method not in UPGRADE_METHODS:
            raise ValueError(
                f"{method}: two models' embeddings evaluate {', '.join(UPGRADE_METHODS)}; "
                f"{method} needs a model trained for it (`backfill demo --methods {method}`)"
            )
    configs: dict[str, TransformConfig] = {}
    for method in methods:
        registered = get_method(method).transformation
        if registered is not None:
            configs[method] = replace(registered, **(psi_options or {}).get(method, {}))
    old_t, new_t = torch.from_numpy(old).float(), torch.from_numpy(new).float()
    labels_t = torch.from_numpy(labels).long()
    fitted = {
        m: fit_transformation(new_t[train], old_t[train], labels_t[train], config)
        for m, config in configs.items()
    }
    gallery = GalleryEmbeddings({"old": old_t[~train], "new": new_t[~train]}, fitted)
    evaluation_labels = labels_t[~train]
    order = make_order("random", len(evaluation_labels), order_seed)
    evaluated: dict[str, tuple[TwoPartEmbeddings, Curve]] = {}
    references = REFERENCES if old.shape[1] == new.shape[1] else REFERENCES[:2]  # new/old
    for method in (*references, *methods):
        parts = get_method(method).parts(gallery)
        evaluated[method] = parts, evaluate_curve(parts, evaluation_labels, order, steps)
    results = results_record(
        evaluated,
        "random",
        dataset="your embeddings",
        setting="your upgrade",
        options=options_source or "fallback: the registry's psi options (chosen on digits)",
        gallery_size=int((~train).sum()),
        training_items=int(train.sum()),
        methods=summarise_methods(evaluated),
        models={},  # not trained here: what results.json says of a trained model is unknown
        config={
            "dims": {"old": int(old.shape[1]), "new": int(new.shape[1])},
            "steps": steps,
            "order_seed": order_seed,
            "transformations": {m: asdict(c) for m, c in configs.items()},
        },
    )
    add_intervals(results, bootstrap_curves(evaluated, order_seed))
    evaluated_parts = {method: two_parts for method, (two_parts, _) in evaluated.items()}
    items = np.flatnonzero(~train)
    return UpgradeReport(results, fitted, evaluated_parts, order, evaluation_labels, items)


@torch.no_grad()
def embed_image_folder(
    model: nn.Module,
    root: str | Path,
    transform: Callable | None = None,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embed every image of an ImageFolder tree (``root/<class>/<image>``) with ``model``,
    any module you loaded (nothing is downloaded): unit embeddings, class ids and paths.

    ``model`` maps an image batch ``(B, 3, H, W)`` to ``(B, ...)`` (a torchvision, timm or
    open_clip model). ``transform``: the model's own
    preprocessing (default: 224-pixel resize and centre crop, ImageNet's normalisation).
    Returns the unit embeddings ``(N, d)`` (float32), the class ids ``(N,)`` and the
    images' paths, in the folder's sorted order."""
    from torchvision import datasets, transforms

    transform = transform or transforms.Compose(
        [
            transforms.Resize(224),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    folder = datasets.ImageFolder(str(root), transform=transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=batch_size)
    model.eval()
    embeddings = [F.normalize(model(images).flatten(1).float(), dim=1) for images, _ in loader]
    labels = np.array(folder.targets, dtype=np.int64)
    return torch.cat(embeddings).numpy(), labels, [path for path, _ in folder.samples]


def save_psi(fitted: Transformation, config: TransformConfig, path: str | Path) -> Path:
    """Write a fitted transformation (psi, and rho if learned) with its configuration, for
    :func:`load_psi` (and then ``BackfillIndex(..., to_old_space=psi.transform)``)."""
    record = {
        "format": PSI_FORMAT,
        "transform": asdict(config),
        "new_dim": fitted.psi.new_dim,
        "old_dim": fitted.psi.old_dim,
        "history": fitted.history,
        "modules": fitted.modules.state_dict(),
    }
    return save_torch(record, path)


def load_psi(path: str | Path) -> Transformation:
    """A transformation written by :func:`save_psi` (``torch.load(weights_only=True)``)."""
    record = load_torch(path)
    if not isinstance(record, dict) or record.get("format") != PSI_FORMAT:
        raise ValueError(f"{path} is not a transformation written by `backfill evaluate`")
    config = TransformConfig(**record["transform"])
    fitted = Transformation.untrained(record["new_dim"], record["old_dim"], config)
    return fitted.restore(record["modules"], record["history"])
