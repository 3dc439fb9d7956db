"""Curve evaluator of this checkout against the one at an earlier git revision, side by side.

Loads ``backfill_lib/core/metrics.py`` as it was at ``--rev`` (``git show``) beside the current
module and times ``evaluate_curve`` on the same ``drm`` problem as ``curve_eval.py``,
alternating the two (best of ``--repeats``), and checks the curves are bit-identical.

    python bench/evaluator_versions.py --rev e6900a1 [--n 10000] [--classes 10]

Last line: ``ratio <new time / old time>``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
from curve_eval import problem, timed

from backfill_lib.core import merge, metrics, orders

ROOT = Path(__file__).resolve().parents[1]


def module_at(rev: str) -> types.ModuleType:
    """``metrics.py`` as it was at ``rev``, loaded as a module of this checkout's package so
    that its relative imports resolve here. Before the layered package (2026-12-07) it lived
    at ``backfill_lib/metrics.py`` and imported ``.backfill``: that name is given the merge
    rules and orders it held then."""
    for path in ("core/metrics.py", "metrics.py"):
        shown = subprocess.run(
            ["git", "show", f"{rev}:backfill_lib/{path}"], cwd=ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"{rev} holds no backfill_lib/core/metrics.py or backfill_lib/metrics.py")
    package = "backfill_lib.core" if path.startswith("core/") else "backfill_lib"
    if package == "backfill_lib":
        flat = types.ModuleType("backfill_lib.backfill")
        for name in (*merge.__all__, *orders.__all__):
            setattr(flat, name, getattr(merge, name, None) or getattr(orders, name))
        sys.modules[flat.__name__] = flat
    module = types.ModuleType(f"{package}.metrics_at_rev")
    module.__package__ = package
    sys.modules[module.__name__] = module
    exec(compile(shown.stdout, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    parts, labels, order = problem(args.n, classes=args.classes)
    versions = {args.rev: module_at(args.rev), "this checkout": metrics}
    best, curves = {}, {}
    for _ in range(args.repeats):
        for name, module in versions.items():
            elapsed, curves[name] = timed(module.evaluate_curve, parts, labels, order)
            best[name] = min(best.get(name, elapsed), elapsed)
            print(f"{name:>14}: {elapsed:7.2f} s", flush=True)
    old, new = curves.values()
    identical = np.array_equal(old.query_ap, new.query_ap, equal_nan=True) and np.array_equal(
        old.top1_hits, new.top1_hits
    )
    print(f"N={args.n}, {args.classes} classes, drm; bit-identical curves: {identical}")
    print(f"ratio {best['this checkout'] / best[args.rev]:.2f}")


if __name__ == "__main__":
    main()
