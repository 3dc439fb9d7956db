"""Curve evaluator of this checkout against the one at an earlier git revision, side by side.

Loads ``backfill_lib/metrics.py`` as it was at ``--rev`` (``git show``) beside the current
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

from backfill_lib import metrics

ROOT = Path(__file__).resolve().parents[1]


def module_at(rev: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:backfill_lib/metrics.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # a submodule of this checkout's package, so its relative imports resolve here
    module = types.ModuleType("backfill_lib.metrics_at_rev")
    module.__package__ = "backfill_lib"
    sys.modules[module.__name__] = module
    exec(compile(source, f"{rev}:metrics.py", "exec"), module.__dict__)
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
