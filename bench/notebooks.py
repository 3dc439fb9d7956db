"""What each notebook costs a student: run time and peak memory, executed in order from an
empty cache (as a student's first pass runs them), and notebook 09 at its lighter default
(100,000 items) beside a million items, side by side.

    python bench/notebooks.py [--out bench/notebooks.json] [--million]

Each notebook runs in a fresh kernel (nbclient), in its own folder, on the embedded digits,
with one model cache for the whole pass: the first notebook that needs a model trains it,
the later ones load it. The peak memory is the kernel's maximum resident set (the most a
JupyterHub's per-user limit must allow). It prints the rows of the course page's table
(docs/course.md); ``--out`` writes the figures as JSON, and a test checks the page against
that file.

Last line: ``ratio <notebook 09's peak at 100,000 items / at a million>`` (with
``--million``; without it, the heaviest notebook's peak in GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
SCALE = next(n for n in NOTEBOOKS if n.stem.endswith("_backfilling_at_scale"))
MILLION = f"{SCALE.stem[:2]} at 1,000,000 items"  # the record's key for it


def run_one(notebook: Path) -> None:
    """Execute ``notebook`` in a fresh kernel; print its wall time and the kernel's peak
    resident memory (the largest child this process waited for) as one JSON line."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    where = {"metadata": {"path": str(notebook.parent)}}  # run in the notebook's own folder
    NotebookClient(book, timeout=3600, resources=where).execute()
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
    print(json.dumps({"seconds": round(seconds, 1), "peak_gib": round(peak_kib / 2**20, 2)}))


def measure(notebook: Path, env: dict[str, str]) -> dict[str, float]:
    """:func:`run_one` of ``notebook`` in its own process, so that each peak is its own."""
    command = [sys.executable, __file__, "--one", str(notebook)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name (Linux), else the machine's architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--million", action="store_true", help=f"also {MILLION}")
    args = parser.parse_args()
    if args.one:
        run_one(args.one)
        return
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
        env["BACKFILL_CACHE"] = cache
        for notebook in NOTEBOOKS:
            figures[notebook.stem] = measure(notebook, env)
            print(f"{notebook.stem}: {figures[notebook.stem]}", flush=True)
        if args.million:
            million = measure(SCALE, {**env, "BACKFILL_SCALE_ITEMS": "1000000"})
            print(f"{MILLION}: {million}", flush=True)
    record = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "date": date.today().isoformat(),
        "notebooks": figures,
        **({MILLION: million} if args.million else {}),
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    rows = {**figures, **({MILLION: million} if args.million else {})}
    for name, f in rows.items():  # docs/course.md's table
        print(f"| {name} | {f['seconds'] / 60:.1f} | {f['peak_gib']:.2f} |")
    heaviest = max(f["peak_gib"] for f in figures.values())
    total = sum(f["seconds"] for f in figures.values())
    print(
        f"all {len(NOTEBOOKS)} in order from an empty cache: {total / 60:.1f} min; "
        f"peak {heaviest} GiB"
    )
    if args.million:
        print(f"ratio {figures[SCALE.stem]['peak_gib'] / million['peak_gib']:.2f}")
    else:
        print(f"ratio {heaviest}")


if __name__ == "__main__":
    main()
