"""Build the course site: ``python docs/build_site.py`` -> ``build/site/index.html``.

1. Stage the pages under ``build/site-src`` in the repository's own layout (so every
   relative link keeps working): README.md as the home page, docs/, bench/README.md,
   CONTRIBUTING.md, the figures, and the notebooks *executed* on the embedded digits, with
   their outputs (the digits models come from the cache, ``$BACKFILL_CACHE``, or are
   trained once).
2. Copy MathJax from the ``jupyter-server-mathjax`` wheel into the site, so the notebooks'
   math renders offline (no CDN at view time).
3. ``mkdocs build`` with mkdocs.yml (Material for MkDocs, mkdocs-jupyter for the
   notebooks, mkdocstrings for the API reference).

Open ``build/site/index.html`` in a browser; no server is needed. ``--out DIR`` builds
into ``DIR/site`` instead (staging in ``DIR/site-src``).

Why Material for MkDocs: pure Python, installed from the package registry like everything
else here (Jupyter Book 2 runs on Node.js); mkdocs-jupyter renders notebooks with their
outputs and mkdocstrings the API. Its authors end its maintenance in May 2027 for
Zensical, which reads the same mkdocs.yml; the notebook and API plugins decide when to
move.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupyter_server_mathjax
import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = Path(__file__).resolve().parents[1]
# The wheel ships MathJax 2.7 with the STIX-Web fonts only (as Jupyter serves it): say so,
# loaded after the main config through mkdocs.yml's custom_mathjax_url (",local/fonts").
MATHJAX_FONTS = """MathJax.Hub.Config({
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  SVG: {font: "STIX-Web"}
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/fonts.js");
"""
PAGES = ("README.md", "CONTRIBUTING.md", "bench/README.md", "notebooks/solutions/README.md")


def execute(notebook: Path, target: Path) -> None:
    """Run every cell of ``notebook`` in its own folder and write it, outputs included."""
    book = nbformat.read(notebook, as_version=4)
    ExecutePreprocessor(timeout=1800, kernel_name="python3").preprocess(
        book, {"metadata": {"path": str(notebook.parent)}}
    )
    book.metadata.pop("widgets", None)  # no stored widget state: it breaks static pages
    nbformat.write(book, target)


def stage(notebooks: list[Path], stage_dir: Path) -> None:
    """Copy the pages, execute the notebooks and add MathJax under ``stage_dir``."""
    shutil.rmtree(stage_dir, ignore_errors=True)
    (stage_dir / "notebooks").mkdir(parents=True)
    for page in PAGES:
        (stage_dir / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, stage_dir / ("index.md" if page == "README.md" else page))
    shutil.copytree(ROOT / "docs", stage_dir / "docs", ignore=shutil.ignore_patterns("*.py"))
    shutil.copytree(ROOT / "figures", stage_dir / "figures", ignore=shutil.ignore_patterns("*.pt"))
    for notebook in notebooks:
        print(f"executing {notebook.name}", flush=True)
        execute(notebook, stage_dir / "notebooks" / notebook.name)
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, stage_dir / "assets" / "mathjax")
    local = stage_dir / "assets" / "mathjax" / "config" / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "fonts.js").write_text(MATHJAX_FONTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="default: build/")
    parser.add_argument("--notebooks", nargs="*", help="only these, e.g. 01 03 (default: all)")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    if args.notebooks:
        notebooks = [n for n in notebooks if any(n.name.startswith(k) for k in args.notebooks)]
    out = args.out.resolve()
    stage(notebooks, out / "site-src")
    config = out / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {ROOT / 'mkdocs.yml'}\ndocs_dir: {out / 'site-src'}\nsite_dir: {out / 'site'}\n"
    )
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(config)], env=env, check=True
    )
    print(f"built {out / 'site' / 'index.html'}")


if __name__ == "__main__":
    main()
