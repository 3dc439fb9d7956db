"""What the bench scripts that run experiments share: their data and cache options.

Each script runs as ``python bench/<name>.py`` (this folder is then on ``sys.path``), so
``from _common import experiment_parser`` finds this file.
"""

from __future__ import annotations

import argparse


def experiment_parser(
    description: str | None, dataset: str = "digits", cache_help: str | None = None
) -> argparse.ArgumentParser:
    """A parser with ``--dataset`` (default ``dataset``), ``--data-root`` and ``--cache``
    (default: the library's cache, ``$BACKFILL_CACHE`` or ``~/.cache/backfill_lib``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default=dataset, help=f"dataset name (default {dataset})")
    parser.add_argument("--data-root", help="folder holding CIFAR's python layout, if used")
    parser.add_argument("--cache", help=cache_help or "cache folder (default: the library's)")
    return parser
