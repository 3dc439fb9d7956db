"""End to end in a real browser: JupyterLab on localhost, the explorer notebook, a slider.

Starts JupyterLab on a copy of ``notebooks/07_backfill_explorer.ipynb``, opens it in
headless Debian Chromium driven by Playwright (no browser download), waits until the
notebook's kernel is connected and idle, runs every cell, moves the backfill slider with the
keyboard and checks that the displayed mAP becomes the evaluator's value at the new fraction.
Skips when Chromium or Playwright is missing.
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backfill_lib.pipeline.pack_experiment import PackExperiment

ROOT = Path(__file__).resolve().parents[2]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


METRICS = re.compile(r"backfilled (\d+)% · mAP ([\d.]+)% · top-1 ([\d.]+)%")


pytestmark = pytest.mark.browser


# window.jupyterapp exists because the server runs with LabApp.expose_app_in_browser.
KERNEL_READY = """() => {
    const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
    return kernel?.connectionStatus === "connected" && kernel?.status === "idle";
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyter(tmp_path, cache):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    shutil.copy(ROOT / "notebooks" / "07_backfill_explorer.ipynb", tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "BACKFILL_CACHE": str(cache), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.news_url=",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield f"{base}/lab/tree/07_backfill_explorer.ipynb?token={token}"
    server.terminate()
    server.wait(timeout=30)


def read_metrics(page) -> tuple[int, float]:
    # The DOM's text, as the expect() calls read it: innerText is "" while JupyterLab skips
    # rendering an off-screen cell (content-visibility), which failed a CI run after
    # "backfilled 50%" had been seen.
    text = page.locator(".bf-metrics").text_content() or ""
    match = METRICS.search(text)
    assert match, f"unexpected metrics text: {text!r}"
    return int(match.group(1)), float(match.group(2))


def test_explorer_slider_in_a_real_browser(jupyter):
    from playwright.sync_api import expect, sync_playwright

    methods = ("new/old", "drm", "bct", "rt", "rt+mc")  # the notebook's, on its default pack
    packed = PackExperiment("cifar10", methods=methods, pictured=True)
    expected = packed.results("random")["methods"]["rt+mc"]["mAP"]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(jupyter)
        page.locator(".jp-Notebook").wait_for(timeout=60_000)
        # Cells run before the session has its kernel are cleared, not queued (they stay
        # "[ ]"): wait until the notebook's kernel is connected and idle.
        page.wait_for_function(KERNEL_READY, timeout=120_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        metrics = page.locator(".bf-metrics")
        expect(metrics).to_be_visible(timeout=240_000)
        # the last cell sets t = 50%; wait for it, then check the evaluator's number
        expect(metrics).to_contain_text("backfilled 50%", timeout=120_000)
        percent, shown = read_metrics(page)
        assert shown == pytest.approx(100 * expected[percent // 5], abs=0.006)
        # move the slider two steps to the right with the keyboard
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        expect(metrics).to_contain_text("backfilled 60%", timeout=30_000)
        percent, shown = read_metrics(page)
        assert percent == 60
        assert shown == pytest.approx(100 * expected[12], abs=0.006)
        assert shown != pytest.approx(100 * expected[10], abs=0.006)
        # the other panels show the same position: the strip's title and the curve markers
        expect(page.locator(".bf-strip-title")).to_contain_text("at t = 60%")
        markers = page.locator(".bf-marker")
        assert markers.count() == 2
        for i in range(2):
            assert markers.nth(i).get_attribute("data-fraction") == "0.60"
        curves, marker = page.locator(".bf-curves").bounding_box(), markers.first.bounding_box()
        assert curves["x"] < marker["x"] < curves["x"] + curves["width"]
        # at 1366x768 the slider, the numbers, the curves, the histogram and the retrieved
        # images are on screen together
        page.set_viewport_size({"width": 1366, "height": 768})
        page.locator(".widget-slider").first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.mouse.wheel(0, -40)  # keep the controls above the slider in view too
        page.screenshot(path=str(Path(os.environ.get("BROWSER_SCREENSHOT", "/tmp/explorer.png"))))
        for selector in (
            ".widget-slider",
            ".bf-metrics",
            ".bf-curves",
            ".bf-histogram",
            ".bf-strip",
        ):
            box = page.locator(selector).first.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= 768, (selector, box)
        browser.close()
