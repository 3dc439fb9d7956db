"""The ``backfill`` command (also ``python -m backfill_lib``): argument parsing, and one small
function per subcommand (argparse's ``set_defaults(run=...)``) that calls the pipeline."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .core.metrics import MAX_STEPS
from .core.orders import ORDER_KINDS, ORDERS
from .core.transformation import TransformConfig
from .data.splits import SETTINGS
from .methods.registry import method_names
from .pipeline.config import PROFILES, ExperimentConfig, default_config
from .pipeline.experiment import Experiment
from .pipeline.gallery_job import backfill_experiment_gallery
from .pipeline.options import TunedOptions, load_options
from .pipeline.pack import build_pack, save_pack
from .pipeline.reproduce import SETTING_NAMES, default_out, reproduce
from .pipeline.tune import describe, tunable_methods, tune
from .pipeline.upgrade import UPGRADE_METHODS, evaluate_upgrade, read_array, save_psi, split_items
from .reporting.outputs import redraw_outputs, write_outputs
from .reporting.tables import format_compatibility, format_models, format_table
from .serving.index import BackfillIndex, check_factory
from .serving.job import job_record
from .storage import default_cache_dir
from .training import distributed

__all__ = ["build_parser", "main"]


# Upper bounds where a larger value can only be a mistake (and would fail late, or never end).
MAX_EPOCHS = 10_000
MAX_BUDGET = 1_000  # candidates per method; the largest search space has 42
MAX_SEED = 2**31 - 1  # model seeds are 2s and 2s + 1; an epoch's shuffle is seeded by s * 100,003


def _at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum`` (and ``<= maximum``); argparse turns the
    error into its one usage line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above the maximum {maximum:,}")
        return value

    return parse


def _check_writable_folder(path: Path, what: str) -> None:
    """Fail before any training when ``path`` cannot become a writable folder (it is a
    file, or its nearest existing ancestor is not writable). Nothing is created."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{what} {path}: {existing} is a file, not a folder; pick another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{what} {path}: {existing} is not writable; pick another path or fix its permissions"
        )


def _add_common(
    parser: argparse.ArgumentParser, setting: bool = True, options: bool = True
) -> None:
    """The data, cache and profile options every subcommand shares (``setting``: and the
    options of one experiment: its setting and ``--limit-images``; ``options``: and
    ``--options FILE``)."""
    parser.add_argument(
        "--dataset",
        default="digits",
        help="digits (default, offline), cifar10, cifar100, imagefolder:PATH, tinyimagenet:PATH "
        "or stream:PATH (docs/usage.md)",
    )
    parser.add_argument(
        "--data-root", help="folder holding the dataset files (or $BACKFILL_DATA_ROOT)"
    )
    parser.add_argument(
        "--download", action="store_true", help="download CIFAR when missing (online)"
    )
    parser.add_argument(
        "--cache", help="cache folder (default $BACKFILL_CACHE or ~/.cache/backfill_lib)"
    )
    if setting:
        parser.add_argument("--setting", default="extended-class", choices=SETTINGS)
        parser.add_argument(
            "--limit-images",
            type=_at_least(2),
            help="smoke test: at most this many images per training and evaluation set",
        )
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument(
        "--epochs",
        type=_at_least(1, MAX_EPOCHS),
        help="override the profile's epochs for every model",
    )
    if options:
        parser.add_argument(
            "--options",
            type=Path,
            metavar="FILE",
            help="the methods' options, chosen on this data by `backfill tune` (default: "
            "the fallback, said on stderr)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backfill", description="Online backfilling for image retrieval."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train (or reuse) the models, evaluate every method along the backfill, "
        "write results.json and figures",
    )
    _add_common(demo)
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument(
        "--methods",
        nargs="+",
        default=list(method_names()),
        metavar="METHOD",
        help=f"any of {' '.join(method_names())} (old/old and new/new always run)",
    )
    demo.add_argument(
        "--orders",
        nargs="+",
        default=list(ORDERS),
        metavar="ORDER",
        help=f"backfill orders (default {' '.join(ORDERS)}; also fastfill: FastFill's learned "
        "uncertainty)",
    )
    demo.add_argument(
        "--steps",
        type=_at_least(1, MAX_STEPS),
        default=20,
        help="curve resolution S (S+1 points)",
    )
    demo.set_defaults(run=_demo)
    train = sub.add_parser(
        "train",
        help="train (or load) one model: old, new, or a compatible recipe "
        "against the cached old model",
    )
    _add_common(train)
    train.add_argument(
        "--model", required=True, choices=("old", "new", *method_names("compatible"))
    )
    train.set_defaults(run=_train)
    rep = sub.add_parser(
        "reproduce",
        help="every method in every setting over seeds: figures, results.md and the claims",
    )
    _add_common(rep, setting=False)
    rep.add_argument("--out", help="output folder (default figures/<dataset name>)")
    rep.add_argument("--settings", nargs="+", default=list(SETTING_NAMES), choices=SETTING_NAMES)
    rep.add_argument(
        "--seeds", nargs="+", type=_at_least(0, MAX_SEED), default=[0], help="distinct"
    )
    rep.set_defaults(run=_reproduce)
    _add_backfill_job(sub)
    _add_tune(sub)
    _add_evaluate(sub)
    _add_pack(sub)
    redraw = sub.add_parser(
        "redraw",
        help="draw results folders' figures and results.md again from their JSON (after a "
        "change to the plots; nothing is trained or evaluated)",
    )
    redraw.add_argument(
        "folders", nargs="+", type=Path, help="results folders (demo's or reproduce's --out)"
    )
    redraw.set_defaults(run=_redraw, cache=None)
    return parser


def _add_evaluate(sub: Any) -> None:
    """The ``evaluate`` subcommand: online backfilling on two models' embedding files."""
    evaluate = sub.add_parser(
        "evaluate",
        help="your own upgrade: drm, rt, rt+mc, psi in closed form and FCT's h along the "
        "backfill, from the embeddings of the same items by the old and the new model "
        "(docs/upgrade.md)",
    )
    evaluate.add_argument(
        "--old", required=True, type=Path, help="old embeddings (.npy, .safetensors)"
    )
    evaluate.add_argument("--new", required=True, type=Path, help="new embeddings, same items")
    evaluate.add_argument("--labels", required=True, type=Path, help="class ids of the items")
    split = evaluate.add_mutually_exclusive_group()
    split.add_argument(
        "--split", type=Path, help="1 for the items to fit psi on, 0 for those to evaluate on"
    )
    split.add_argument(
        "--train-fraction",
        type=float,
        default=0.5,
        help="else this share of each class's items, drawn with --seed, to fit psi on "
        "(default %(default)s)",
    )
    evaluate.add_argument(
        "--methods", nargs="+", default=list(UPGRADE_METHODS), choices=UPGRADE_METHODS
    )
    evaluate.add_argument("--normalise", action="store_true", help="divide each row by its norm")
    evaluate.add_argument(
        "--options", type=Path, metavar="FILE", help="psi's options (`backfill tune`)"
    )
    evaluate.add_argument("--seed", type=_at_least(0, MAX_SEED), default=0, help="split and order")
    evaluate.add_argument("--steps", type=_at_least(1, MAX_STEPS), default=20)
    evaluate.add_argument(
        "--out", default="out/evaluate", help="output folder (default %(default)s)"
    )
    evaluate.set_defaults(run=_evaluate, cache=None)


def _add_pack(sub: Any) -> None:
    """``backfill pack``: the old and new models' embeddings of real photographs, to ship."""
    pack = sub.add_parser(
        "pack",
        help="write a real-image pack: the old and new models' embeddings of every test image, "
        "of a sample of training images, and thumbnails (pipeline/pack.py)",
    )
    _add_common(pack, options=False)
    pack.add_argument("--out", required=True, type=Path, help="the pack file to write (.npz)")
    pack.add_argument(
        "--models",
        nargs="*",
        default=[],
        choices=method_names("compatible"),
        help="compatible models to pack beside the old and new ones (trained when not cached)",
    )
    pack.add_argument(
        "--train-per-class",
        type=_at_least(1),
        default=250,
        help="training images per class to fit psi on (default 250)",
    )
    pack.add_argument(
        "--thumbnails-per-class",
        type=_at_least(1),
        default=100,
        help="test images per class with a thumbnail (default 100)",
    )
    pack.set_defaults(run=_pack, options=None)


def _add_tune(sub: Any) -> None:
    """The ``tune`` subcommand: every method's options, chosen on the validation split."""
    tune = sub.add_parser(
        "tune",
        help="choose every method's options on the validation split (one rule, one budget "
        "per method) and write an options file for --options",
    )
    _add_common(tune, options=False)
    tune.add_argument(
        "--out",
        default="out/options.json",
        help="the options file, rewritten after every candidate: a search into an existing "
        "one resumes it or adds methods to it (default %(default)s)",
    )
    tune.add_argument(
        "--methods",
        nargs="+",
        default=list(tunable_methods()),
        choices=tunable_methods(),
        metavar="METHOD",
        help=f"any of {' '.join(tunable_methods())} (default: all)",
    )
    tune.add_argument(
        "--budget",
        type=_at_least(1, MAX_BUDGET),
        default=8,
        help="candidates per method, each one training of what the method trains "
        "(default %(default)s)",
    )
    tune.add_argument(
        "--search-seed", type=_at_least(0, MAX_SEED), default=0, help="seeds the draws"
    )
    tune.set_defaults(run=_tune)


def _add_backfill_job(sub: Any) -> None:
    """The ``backfill-job`` subcommand: the resumable job on an experiment's gallery."""
    job = sub.add_parser(
        "backfill-job",
        help="re-embed the gallery with the new model into a saved BackfillIndex, in "
        "batches; run it again after a crash to resume",
    )
    _add_common(job)
    job.add_argument(
        "--index", default="out/backfill-job/index.npz", help="the index file (default %(default)s)"
    )
    job.add_argument("--order", default="random", choices=ORDER_KINDS)
    job.add_argument("--batch-size", type=_at_least(1), default=256)
    job.add_argument(
        "--save-every", type=_at_least(1), default=1, help="batches between saves (default 1)"
    )
    job.add_argument("--factory", default="Flat", help="faiss factory of both parts")
    job.add_argument(
        "--max-batches", type=_at_least(1), help="stop after this many batches (run in slices)"
    )
    job.set_defaults(run=_backfill_job)


def _options(args: argparse.Namespace) -> TunedOptions | None:
    """The options file of ``--options``, read and checked (a warning when it was tuned on
    another dataset or profile); ``None`` without one."""
    if getattr(args, "options", None) is None:
        return None
    options = load_options(args.options)
    if options.dataset != args.dataset or options.profile != args.profile:
        print(
            f"backfill: warning: {args.options} was tuned on {options.dataset} "
            f"({options.profile} profile), not {args.dataset} ({args.profile} profile)",
            file=sys.stderr,
        )
    return options


def _say_options(config: ExperimentConfig) -> None:
    """One line on stderr for a run on options no search chose on this data."""
    if not config.options.startswith("tuned:") and distributed.is_main():
        print(
            f"backfill: options: {config.options.removeprefix('fallback: ')} (untuned: "
            f"`backfill tune --dataset {config.dataset}` chooses them on this data's "
            "validation split)",
            file=sys.stderr,
        )


def _config(args: argparse.Namespace, **fields: Any) -> ExperimentConfig:
    config = default_config(
        args.dataset,
        args.profile,
        _options(args),
        data_root=args.data_root,
        cache_dir=args.cache,
        download=args.download,
        setting=args.setting,
        limit_images=args.limit_images,
        **fields,
    )
    if args.epochs is not None:
        config = replace(
            config,
            old=replace(config.old, epochs=args.epochs),
            new=replace(config.new, epochs=args.epochs),
        )
    return config


def _check_job(args: argparse.Namespace, config: ExperimentConfig) -> None:
    """Everything about ``backfill-job``'s index that can be checked before any training:
    its path, the faiss factory for both models' dimensions, an earlier run's record and
    index (readable, of the right type)."""
    index = Path(args.index)
    _check_writable_folder(index.parent, "--index")
    if index.is_dir():
        raise ValueError(
            f"--index {index} is a folder: give the index file, e.g. {index}/index.npz"
        )
    for dim in {config.old.embed_dim, config.new.embed_dim}:
        check_factory(args.factory, dim)
    job_record(index)
    if index.exists():
        BackfillIndex.load(index)


def _backfill_job(args: argparse.Namespace, start: float) -> None:
    """``backfill backfill-job``: one run of the resumable job on the experiment's gallery."""
    config = _config(args)
    _say_options(config)
    _check_job(args, config)
    experiment = Experiment(config, args.data_root, args.cache, args.download)
    report = backfill_experiment_gallery(
        experiment,
        args.index,
        args.order,
        args.batch_size,
        args.save_every,
        args.factory,
        args.max_batches,
    )
    print(
        f"{args.index}: {report.done:,} of {report.total:,} items backfilled "
        f"(this run: from {report.resumed_at:,}, {report.batches} batches, "
        f"{report.saves} saves) in {time.perf_counter() - start:.1f} s"
    )


def _demo(args: argparse.Namespace, start: float) -> None:
    """``backfill demo``: every method along the backfill, on one dataset and setting."""
    out = Path(args.out)
    _check_writable_folder(out, "--out")
    config = _config(args, methods=tuple(args.methods), orders=tuple(args.orders), steps=args.steps)
    _say_options(config)
    report = Experiment(config, args.data_root, args.cache, args.download).run()
    written = write_outputs(report.results, report.compatibility, out)
    for results in report.results:
        print(format_table(results), end="\n\n")
    print(format_models(report.results[0]), end="\n\n")
    print(format_compatibility(report.compatibility))
    print(f"\nwrote {', '.join(str(p) for p in written)} in {time.perf_counter() - start:.1f} s")


def _train(args: argparse.Namespace, start: float) -> None:
    """``backfill train``: one model, trained or loaded from the cache."""
    config = _config(args)
    _say_options(config)
    artefacts = Experiment(config, args.data_root, args.cache, args.download).artefacts
    if args.model in method_names("compatible"):
        artefacts.train_compatible(args.model)
    else:
        artefacts.model(args.model)
    if distributed.is_main():
        print(
            f"{args.model}: {artefacts.checkpoint_path(args.model)}\n"
            f"{artefacts.describe_accuracy(args.model)}"
        )


def _reproduce(args: argparse.Namespace, start: float) -> None:
    """``backfill reproduce``: every setting over the seeds, and the claims."""
    out = Path(args.out) if args.out else default_out(args.dataset)
    _check_writable_folder(out, "--out")
    options = _options(args)
    data = {"data_root": args.data_root, "cache_dir": args.cache, "download": args.download}
    _say_options(default_config(args.dataset, args.profile, options, **data))
    md = reproduce(
        args.dataset,
        out,
        args.profile,
        tuple(args.settings),
        tuple(args.seeds),
        args.data_root,
        args.cache,
        args.download,
        args.epochs,
        options,
    )
    print(md.read_text())
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")


def _pack(args: argparse.Namespace, start: float) -> None:
    """``backfill pack``: build the pack from the cached (or trained) old and new models."""
    if args.out.suffix != ".npz":
        raise ValueError(f"--out {args.out}: a pack is an .npz file")
    _check_writable_folder(args.out.parent, "--out's folder")
    experiment = Experiment(_config(args), args.data_root, args.cache, args.download)
    models = f" --models {' '.join(args.models)}" if args.models else ""
    command = (
        f"backfill pack --dataset {args.dataset} --setting {args.setting} --profile "
        f"{args.profile} --train-per-class {args.train_per_class} --thumbnails-per-class "
        f"{args.thumbnails_per_class}{models} --out {args.out}"
    )
    pack = build_pack(
        experiment,
        ("old", "new", *args.models),
        args.train_per_class,
        args.thumbnails_per_class,
        command=command,
    )
    path = save_pack(pack, args.out)
    mAPs = ", ".join(f"{name} {100 * value:.2f}" for name, value in pack.meta["mAP"].items())
    size = path.stat().st_size / 2**20
    print(f"wrote {path} ({size:.1f} MiB; test mAP {mAPs}) in {time.perf_counter() - start:.1f} s")


def _redraw(args: argparse.Namespace, start: float) -> None:
    """``backfill redraw``: every results folder's figures and results.md, from its JSON."""
    for folder in args.folders:
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder; pass the --out folder of a run")
        written = redraw_outputs(folder)
        print(f"{folder}: wrote {len(written)} files")
    print(f"in {time.perf_counter() - start:.1f} s")


def _tune(args: argparse.Namespace, start: float) -> None:
    """``backfill tune``: the options file of every method, chosen on the validation split."""
    out = Path(args.out)
    _check_writable_folder(out.parent, "--out")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: give the options file, e.g. {out}/options.json")
    record = tune(
        _config(args),
        out,
        tuple(args.methods),
        args.budget,
        args.search_seed,
        args.data_root,
        args.cache,
        args.download,
        args.profile,
    )
    for line in describe(record):
        print(line)
    took = f"wrote {out} in {time.perf_counter() - start:.1f} s"
    if record.get("pending"):
        pending = " ".join(record["pending"])
        print(f"{took}; to finish it: backfill tune --methods {pending} --out {out} ...")
    else:
        print(f"{took}; run with --options {out}")


def _evaluate(args: argparse.Namespace, start: float) -> None:
    """``backfill evaluate``: the online methods on two models' embedding files."""
    out = Path(args.out)
    _check_writable_folder(out, "--out")
    old, new = (
        read_array(path, "embeddings", name)
        for path, name in ((args.old, "--old"), (args.new, "--new"))
    )
    labels = read_array(args.labels, "labels", "--labels")
    if args.normalise:
        old, new = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (old, new))
    if args.split is not None:
        train = read_array(args.split, "split", "--split").astype(bool)
    else:
        train = split_items(labels, args.train_fraction, args.seed)
    psi_options, source = None, ""
    if args.options is not None:
        options = load_options(args.options)
        psi_options, source = options.transformations, options.source()
    else:
        print(
            "backfill: psi's options: the registry's (chosen on digits); none were tuned on "
            "these embeddings",
            file=sys.stderr,
        )
    names = (f"--old {args.old}", f"--new {args.new}", f"--labels {args.labels}")
    report = evaluate_upgrade(
        old,
        new,
        labels,
        train,
        tuple(args.methods),
        psi_options,
        args.steps,
        order_seed=args.seed,
        options_source=source,
        names=names,
    )
    written = write_outputs([report.results], None, out)
    for method, fitted in report.transformations.items():
        config = TransformConfig(**report.results["config"]["transformations"][method])
        kind = "h" if config.direction == "forward" else "psi"  # FCT's h maps old -> new
        written.append(save_psi(fitted, config, out / f"{kind}-{method.replace('+', '-')}.pt"))
    print(format_table(report.results))
    print(f"\nwrote {', '.join(str(p) for p in written)} in {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 on success, 2 (and one line on stderr) on bad input."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    distributed.setup()
    if distributed.world_size() > 1 and args.command != "train":
        print(
            f"backfill: error: under torchrun only `backfill train` runs on several processes; "
            f"train each model so, then run `backfill {args.command}` as one process (it loads "
            "them from the cache)",
            file=sys.stderr,
        )
        return 2
    try:
        _check_writable_folder(Path(args.cache) if args.cache else default_cache_dir(), "the cache")
        args.run(args, start)
    except (ValueError, OSError) as err:  # bad input, missing or unreadable files
        print(f"backfill: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
