"""Wall time of ``backfill demo`` on the embedded default, with an empty and a warm cache.

Runs the README's demo command twice in fresh processes against a new cache folder.
Goals: under 60 s empty, under 10 s warm (2-core CPU).

    python bench/demo.py

Last line: ``ratio <empty-cache time / warm-cache time>``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cache: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "backfill_lib", "demo", "--cache", str(cache), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "out"
        empty = run(cache, out)
        warm = run(cache, out)
    print(f"backfill demo, empty cache: {empty:6.1f} s (goal < 60 s)")
    print(f"backfill demo, warm cache:  {warm:6.1f} s (goal < 10 s)")
    print(f"ratio {empty / warm:.2f}")


if __name__ == "__main__":
    main()
