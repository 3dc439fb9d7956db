"""The CPU profile's training recipe for 32x32 images against the previous one.

Default run (the recorded measurement): on the test split, train the independent new model
with the previous recipe (ResNet-20, 6 epochs, fp32, cosine LR, batch 128) and with the
current CPU profile, one after the other from an empty cache, and print each one's test
top-1 accuracy, new/new mAP and training wall time. Last line: ``ratio <current training
time / previous training time>``.

With ``--split validation`` it trains on 80% of the training images and evaluates on the
other 20% (never the test split): the mode the recipe was chosen in. ``--vary`` then runs
the profile and each listed change to it, one factor at a time (``--vary`` alone: the
profile only); ``--set`` moves the base first. Models are cached under ``--cache``, so an
interrupted grid resumes.

    python bench/training_recipe.py [--dataset imagefolder:../shared/datasets/cifar10]
    python bench/training_recipe.py --split validation --cache DIR \\
        --vary lr=0.1,0.4 label_smoothing=0 augment=false [--set epochs=8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import fields, replace

from _common import experiment_parser

from backfill_lib import Experiment, TrainConfig, default_config

PREVIOUS_CPU_RECIPE = TrainConfig(
    arch="resnet20", embed_dim=64, epochs=6, batch_size=128, lr=0.1, seed=1
)
FIELD_TYPES = {f.name: type(getattr(TrainConfig(), f.name)) for f in fields(TrainConfig)}


def parse_change(text: str) -> list[tuple[str, object]]:
    """``"lr=0.1,0.4"`` -> ``[("lr", 0.1), ("lr", 0.4)]``, typed by TrainConfig's fields."""
    name, _, values = text.partition("=")
    if name not in FIELD_TYPES or not values:
        raise SystemExit(f"bad change {text!r}: use FIELD=V1,V2 with FIELD one of {FIELD_TYPES}")
    kind = FIELD_TYPES[name]
    if kind is bool:
        return [(name, v.lower() in ("1", "true", "yes")) for v in values.split(",")]
    return [(name, kind(v)) for v in values.split(",")]


def evaluate(label: str, recipe: TrainConfig, args: argparse.Namespace, cache: str) -> float:
    """Train (or load) the new model with ``recipe``; print accuracy, mAP, time; return time."""
    base = default_config(
        args.dataset,
        "cpu",
        validation=args.split == "validation",
        data_root=args.data_root,
        cache_dir=args.cache,
    )
    experiment = Experiment(replace(base, new=recipe, methods=()), args.data_root, cache)
    cached = experiment.artefacts.checkpoint_path("new").exists()
    start = time.perf_counter()
    experiment.model("new")
    seconds = time.perf_counter() - start
    accuracy = experiment.artefacts.accuracy("new")
    new_new = experiment.retrieval_mAP("new", "new")
    timing = "cached" if cached else f"{seconds / 60:5.1f} min"
    print(
        f"{label:40s} {recipe.arch:14s} {recipe.epochs:3d} ep  top-1 {100 * accuracy:5.1f}  "
        f"mAP {100 * new_new:5.1f}  training {timing}",
        flush=True,
    )
    return seconds


def main() -> None:
    parser = experiment_parser(
        __doc__.splitlines()[0],
        dataset="imagefolder:../shared/datasets/cifar10",
        cache_help="cache folder (default: a fresh temporary one)",
    )
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--vary", nargs="*", metavar="FIELD=V1,V2")
    args = parser.parse_args()
    profile = default_config(
        args.dataset, "cpu", data_root=args.data_root, cache_dir=args.cache
    ).new
    base = replace(profile, **dict(c for text in args.set for c in parse_change(text)))
    print(f"{args.dataset}, independent new model, {args.split} split")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or tmp
        if args.vary is None:
            previous = evaluate("previous CPU recipe", PREVIOUS_CPU_RECIPE, args, cache)
            current = evaluate("current CPU profile", base, args, cache)
            print(f"ratio {current / previous:.3f}")
            return
        evaluate("profile" + "".join(f" {s}" for s in args.set), base, args, cache)
        for text in args.vary:
            for name, value in parse_change(text):
                evaluate(f"  {name}={value}", replace(base, **{name: value}), args, cache)


if __name__ == "__main__":
    main()
