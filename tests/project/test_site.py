"""The course site: `python docs/build_site.py` builds, every notebook page holds the
figures its execution produced, math is served from the site itself, and a real browser
renders a page (math typeset, figures decoded) from disk."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.slow  # executes the nine notebooks (digits models from the cache)


@pytest.fixture(scope="module")
def built(cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "BACKFILL_CACHE": str(cache)}
    build = [sys.executable, str(ROOT / "docs" / "build_site.py"), "--jobs", "2"]
    command = [*build, "--out", str(out)]
    subprocess.run(command, env=env, check=True, timeout=1800, capture_output=True)
    return out


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_page_holds_its_outputs_and_figures(built, notebook):
    executed = json.loads((built / "site-src" / "notebooks" / notebook.name).read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    figures = sum("image/png" in o.get("data", {}) for o in outputs) + sum(
        len(re.findall(r"<img[^>]*src=.data:image/png;base64", str(o["data"]["text/html"])))
        for o in outputs
        if "text/html" in o.get("data", {})  # a snapshot's images (the explorer's)
    )
    assert not any(o["output_type"] == "error" for o in outputs)
    page = (built / "site" / "notebooks" / f"{notebook.stem}.html").read_text()
    assert len(re.findall(r'<img[^>]*?src="data:image/png;base64', page)) == figures
    if notebook.stem[:2] != "08":  # 08 (serving): tables and checks
        assert figures >= 1
    title = json.loads(notebook.read_text())["cells"][0]["source"][0].lstrip("# ").strip()
    assert title.split("·")[-1].strip().replace("`", "") in page.replace("<code>", "").replace(
        "</code>", ""
    )


def test_every_link_on_the_site_resolves(built):
    """Crawl every page: each ``href`` and ``src`` within the site names a file of it (a
    folder's ``index.html`` for a folder; 404.html's absolute links from the site's root)."""
    site = built / "site"
    broken = []
    for page in site.rglob("*.html"):
        for link in re.findall(r'(?:href|src)="([^"]*)"', page.read_text(errors="replace")):
            path = unquote(link.split("#")[0].split("?")[0])
            if not path or re.match(r"[a-z][a-z0-9+.-]*:", path):  # http:, data:, mailto:
                continue
            target = site / path[1:] if path.startswith("/") else page.parent / path  # 404.html
            if not (target.is_file() or (target / "index.html").is_file()):
                broken.append(f"{page.relative_to(site)} -> {link}")
    assert not broken, f"{len(broken)} broken links, e.g. " + "; ".join(sorted(set(broken))[:15])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_pages_show_no_progress_bars_or_machine_paths(built, cache, notebook):
    page = (built / "site" / "notebooks" / f"{notebook.stem}.html").read_text()
    assert not re.search(r"\d+%\|", page), "a tqdm frame on the page"
    assert str(cache) not in page and str(ROOT) not in page


def test_the_explorer_page_shows_a_snapshot_of_the_explorer(built):
    page = (built / "site" / "notebooks" / "07_backfill_explorer.html").read_text()
    assert "A snapshot of the explorer" in page and "bf-histogram" in page
    assert "VBox(children" not in page


def test_the_home_page_is_the_students_front_door(built):
    """The course page (docs/course.md) is index.html, its links pointed from docs/ to the
    site's root; the README is the developers' page beside it."""
    site = built / "site"
    home = (site / "index.html").read_text()
    assert "A two-week path" in home and "What each notebook costs" in home
    assert 'href="notebooks/01_the_backfilling_problem.html"' in home
    assert "pytest --nbval-lax" in (site / "developers.html").read_text()


def test_math_and_assets_come_from_the_site_itself(built):
    site = built / "site"
    page = (site / "notebooks" / "05_metric_compatible_learning.html").read_text()
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
    mathjax = [s for s in scripts if "MathJax.js" in s]
    assert mathjax and not any(s.startswith("http") for s in scripts)
    assert (site / "notebooks" / mathjax[0].split("?")[0]).resolve().is_file()
    assert "fonts.googleapis" not in page


def test_the_api_reference_is_generated_from_the_docstrings(built):
    reference = (built / "site" / "docs" / "reference.html").read_text()
    for name in (
        "backfill_lib.pipeline.experiment.Experiment",
        "backfill_lib.methods.registry.register",
    ):
        assert f'id="{name}"' in reference
    assert "One dataset, one setting" in reference  # Experiment's docstring


@pytest.mark.browser
def test_a_notebook_page_renders_in_a_real_browser(built):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    page_url = (built / "site" / "notebooks" / "05_metric_compatible_learning.html").as_uri()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        failed = []
        page.on("requestfailed", lambda request: failed.append(request.url))  # the site's files
        page.goto(page_url)
        page.wait_for_function(
            "() => document.querySelectorAll('.MathJax_CHTML, .MathJax').length > 3"
        )
        decoded = page.evaluate(
            "() => [...document.images].filter(i => i.src.startsWith('data:image/png'))"
            ".map(i => i.naturalWidth)"
        )
        heading = page.locator("h1").first.inner_text()
        browser.close()
    assert "Metric-compatible learning" in heading
    assert decoded and min(decoded) > 100
    assert not [url for url in failed if url.startswith("file:")]
