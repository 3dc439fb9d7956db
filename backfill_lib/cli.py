"""The ``backfill`` command (also ``python -m backfill_lib``): argument parsing only."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from .backfill import ORDERS
from .data import SETTINGS, DatasetNotFoundError
from .experiments import METHODS, PROFILES, default_config
from .report import format_compatibility, format_table, write_outputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backfill", description="Online backfilling for image retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train (or reuse) the models, evaluate every method along the backfill, "
        "write results.json and figures",
    )
    demo.add_argument("--dataset", default="digits",
                      help="digits (default, offline), cifar10, cifar100 or imagefolder:PATH")
    demo.add_argument("--data-root", help="folder holding the dataset files (or $BACKFILL_DATA_ROOT)")
    demo.add_argument("--download", action="store_true", help="download CIFAR when missing (online)")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("--cache", help="cache folder (default $BACKFILL_CACHE or ~/.cache/backfill_lib)")
    demo.add_argument("--setting", default="extended-class", choices=SETTINGS)
    demo.add_argument("--profile", default="cpu", choices=PROFILES)
    demo.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD",
                      help=f"any of {' '.join(METHODS)} (old/old and new/new always run)")
    demo.add_argument("--orders", nargs="+", default=list(ORDERS), metavar="ORDER",
                      help=f"backfill orders: {' '.join(ORDERS)}")
    demo.add_argument("--epochs", type=int, help="override the profile's epochs for every model")
    demo.add_argument("--steps", type=int, default=20, help="curve resolution S (S+1 points)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .experiments import Experiment  # torch import only once arguments are valid

    start = time.perf_counter()
    try:
        config = default_config(
            args.dataset,
            args.profile,
            setting=args.setting,
            methods=tuple(args.methods),
            orders=tuple(args.orders),
            steps=args.steps,
        )
        if args.epochs:
            config = replace(
                config,
                old=replace(config.old, epochs=args.epochs),
                new=replace(config.new, epochs=args.epochs),
            )
        experiment = Experiment(config, args.data_root, args.cache, args.download)
        results = [experiment.results(order) for order in config.orders]
        compatibility = experiment.compatibility()
    except (ValueError, DatasetNotFoundError) as err:
        print(f"backfill: error: {err}", file=sys.stderr)
        return 2
    for res in results:
        print(format_table(res))
        print()
    print(format_compatibility(compatibility))
    written = write_outputs(results, compatibility, Path(args.out))
    print(f"\nwrote {', '.join(str(p) for p in written)} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
