"""Build the course site: ``python docs/build_site.py`` -> ``build/site/index.html``.

1. Stage the pages under ``build/site-src`` in the repository's own layout (so every
   relative link keeps working), but for two: the course page (docs/course.md) is the
   home page and the README the developers' page (:data:`STAGED_AS`; links to and from
   them follow). Staged: docs/, bench/README.md,
   CONTRIBUTING.md, the figures, and the notebooks *executed* on the embedded digits, with
   their outputs (the digits models come from the cache, ``$BACKFILL_CACHE``, or are
   trained once). What a reader should not see is taken out of the outputs: progress bars
   (tqdm's widgets, frozen at their first frame once the widget state is gone) and this
   machine's paths. A relative link to a Markdown page is pointed at its HTML page (mkdocs
   does that for Markdown pages, not for notebooks), and every file of the repository that
   a staged page links to (a solution, a source file) is staged beside it, so every link
   on the site resolves.
2. Copy MathJax from the ``jupyter-server-mathjax`` wheel into the site, so the notebooks'
   math renders offline (no CDN at view time).
3. ``mkdocs build`` with mkdocs.yml (Material for MkDocs, mkdocs-jupyter for the
   notebooks, mkdocstrings for the API reference).

Open ``build/site/index.html`` in a browser; no server is needed. ``--out DIR`` builds
into ``DIR/site`` instead (staging in ``DIR/site-src``); ``--jobs 2`` executes two notebooks
at a time, each kernel on half the cores, the longest first by bench/notebooks.json (the
test does: 1.7 times faster on 2 cores).

Why Material for MkDocs: pure Python, installed from the package registry like everything
else here (Jupyter Book 2 runs on Node.js); mkdocs-jupyter renders notebooks with their
outputs and mkdocstrings the API. Its authors end its maintenance in May 2027 for
Zensical, which reads the same mkdocs.yml; the notebook and API plugins decide when to
move.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
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
# the pages staged under another name: a student's front door is the site's home page
STAGED_AS = {"docs/course.md": "index.md", "README.md": "developers.md"}
UNSTAGED = {staged: source for source, staged in STAGED_AS.items()}


LINK = re.compile(r"\]\(([^)\s]+)\)")  # a Markdown link's target
PROGRESS_BAR = re.compile(r"\d+%\|.*\|")  # tqdm's frame: " 40%|####      | 4/10"
WIDGET = "application/vnd.jupyter.widget-view+json"


def tidy(book: nbformat.NotebookNode) -> None:
    """Take out of ``book``'s outputs what the site should not show: tqdm's progress bars
    (a widget without its state renders as its first frame), a widget where it brings a
    snapshot as HTML (the explorer's), and this machine's paths."""
    paths = {os.environ.get("BACKFILL_CACHE", ""): "$BACKFILL_CACHE", str(ROOT): "."}
    paths[str(Path.home())] = "~"
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            if WIDGET in data and PROGRESS_BAR.search(str(data.get("text/plain", ""))):
                continue
            if WIDGET in data and "text/html" in data:  # a widget's snapshot (the explorer's)
                del data[WIDGET]
            if output.output_type == "stream":
                for path in sorted(filter(None, paths), key=len, reverse=True):  # longest first
                    output.text = output.text.replace(path, paths[path])
            kept.append(output)
        cell.outputs = kept


def execute(notebook: Path, target: Path) -> None:
    """Run every cell of ``notebook`` in its own folder and write it, outputs tidied
    (:func:`tidy`) and links to Markdown pages pointed at their HTML pages."""
    print(f"executing {notebook.name}", flush=True)
    book = nbformat.read(notebook, as_version=4)
    ExecutePreprocessor(timeout=1800, kernel_name="python3").preprocess(
        book, {"metadata": {"path": str(notebook.parent)}}
    )
    book.metadata.pop("widgets", None)  # no stored widget state: it breaks static pages
    tidy(book)
    page = str(notebook.relative_to(ROOT))
    for cell in book.cells:
        if cell.cell_type == "markdown":
            cell.source = relink(restage_links(cell.source, page, page))
        for output in cell.get("outputs", []):
            if "text/markdown" in output.get("data", {}):
                markdown = restage_links(output.data["text/markdown"], page, page)
                output.data["text/markdown"] = relink(markdown)
    nbformat.write(book, target)


def restage_links(markdown: str, source: str, staged: str) -> str:
    """The relative links of ``markdown``, a page at ``source`` (relative to the repository)
    staged at ``staged``, pointed at where their targets are staged (:data:`STAGED_AS`):
    ``docs/course.md``'s ``glossary.md`` becomes ``docs/glossary.md`` in ``index.md``."""

    def move(match: re.Match) -> str:
        path, hash_, anchor = match.group(1).partition("#")
        if not path or re.match(r"[a-z][a-z0-9+.-]*:", path):
            return match.group(0)
        target = os.path.normpath(os.path.join(os.path.dirname(source), path))
        if os.path.dirname(source) == os.path.dirname(staged) and target not in STAGED_AS:
            return match.group(0)  # a page and its target where they are in the repository
        target = STAGED_AS.get(target, target)
        return f"]({os.path.relpath(target, os.path.dirname(staged) or '.')}{hash_}{anchor})"

    return LINK.sub(move, markdown)


def relink(markdown: str) -> str:
    """Every link of ``markdown`` through :func:`as_html`."""
    return LINK.sub(lambda match: f"]({as_html(match.group(1))})", markdown)


def as_html(link: str) -> str:
    """``../docs/usage.md#serving`` -> ``../docs/usage.html#serving``; other links as they are."""
    path, hash_, anchor = link.partition("#")
    if "://" in path or not path.endswith(".md"):
        return link
    if Path(path).name == "README.md":  # mkdocs serves a folder's README.md as its index
        return path[: -len("README.md")] + "index.html" + hash_ + anchor
    return path[: -len(".md")] + ".html" + hash_ + anchor


def stage_link_targets(stage_dir: Path) -> None:
    """Stage every repository file that a staged page or notebook links to, where it is not
    staged already, in the same layout (mkdocs copies it to the site as it is), until a
    staged page links to nothing new."""
    pages = [*stage_dir.rglob("*.md"), *stage_dir.rglob("*.ipynb")]
    while pages:
        pages = [new for page in pages for new in _stage_targets_of(page, stage_dir)]


def _stage_targets_of(page: Path, stage_dir: Path) -> list[Path]:
    """Stage what ``page`` links to (see :func:`stage_link_targets`); the new Markdown pages."""
    where = os.path.dirname(page.relative_to(stage_dir))  # links are relative to the staging
    new = []
    for link in LINK.findall(page.read_text(errors="replace")):
        path = link.partition("#")[0]
        if not path or "://" in path or path.startswith("mailto:"):
            continue
        if path.endswith("index.html"):  # a folder's README, as :func:`as_html` wrote it
            path = path[: -len("index.html")] + "README.md"
        elif path.endswith(".html"):
            path = path[: -len(".html")] + ".md"
        staged_path = os.path.normpath(os.path.join(where, path))
        target = (ROOT / UNSTAGED.get(staged_path, staged_path)).resolve()
        if not target.is_file() or ROOT not in target.parents:
            continue
        staged = stage_dir / staged_path
        if not staged.exists():
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(target, staged)
            if staged.suffix == ".md":
                new.append(staged)
    return new


def stage(notebooks: list[Path], stage_dir: Path, jobs: int = 1) -> None:
    """Copy the pages, execute the notebooks (``jobs`` at a time) and add MathJax under
    ``stage_dir``."""
    shutil.rmtree(stage_dir, ignore_errors=True)
    (stage_dir / "notebooks").mkdir(parents=True)
    for page in PAGES:
        (stage_dir / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, stage_dir / page)
    shutil.copytree(ROOT / "docs", stage_dir / "docs", ignore=shutil.ignore_patterns("*.py"))
    shutil.copytree(ROOT / "figures", stage_dir / "figures", ignore=shutil.ignore_patterns("*.pt"))
    for source, staged in STAGED_AS.items():
        (stage_dir / source).rename(stage_dir / staged)
    for page in stage_dir.rglob("*.md"):
        staged = str(page.relative_to(stage_dir))
        source = UNSTAGED.get(staged, staged)
        page.write_text(restage_links(page.read_text(), source, staged))
    runs = [(notebook, stage_dir / "notebooks" / notebook.name) for notebook in notebooks]
    if jobs == 1:
        for notebook, target in runs:
            execute(notebook, target)
    else:  # each kernel gets its share of the cores: more threads than cores stall torch
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
        recorded = json.loads((ROOT / "bench" / "notebooks.json").read_text())["notebooks"]
        # the longest first (bench/notebooks.json), so that none runs alone at the end
        runs.sort(key=lambda run: -recorded.get(run[0].stem, {}).get("seconds", 0))
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(execute, *zip(*runs, strict=True)))
    stage_link_targets(stage_dir)
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, stage_dir / "assets" / "mathjax")
    local = stage_dir / "assets" / "mathjax" / "config" / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "fonts.js").write_text(MATHJAX_FONTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="default: build/")
    parser.add_argument("--notebooks", nargs="*", help="only these, e.g. 01 03 (default: all)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="notebooks executed at a time (default 1)"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give at least 1")
    notebooks = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    if args.notebooks:
        notebooks = [n for n in notebooks if any(n.name.startswith(k) for k in args.notebooks)]
    out = args.out.resolve()
    stage(notebooks, out / "site-src", args.jobs)
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
