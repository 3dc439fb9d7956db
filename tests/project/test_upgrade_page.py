"""docs/upgrade.md's worked example runs as written: its Python block exports the digits
models' embeddings, its `backfill evaluate` command evaluates them, and the result is the
demo's."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "upgrade.md").read_text()

pytestmark = pytest.mark.slow  # the digits models (the cache, or trained once)


def block(language: str) -> str:
    """The code block of the page marked ``<!-- run: language -->``."""
    match = re.search(rf"<!-- run: {language} -->\n```{language}\n(.+?)\n```", PAGE, re.S)
    assert match, f"docs/upgrade.md has no {language} block to run"
    return match.group(1)


def test_the_page_s_commands_run_and_give_the_demo_s_curves(cache, tmp_path):
    env = {**os.environ, "BACKFILL_CACHE": str(cache)}
    subprocess.run([sys.executable, "-c", block("python")], cwd=tmp_path, env=env, check=True)
    command = shlex.split(block("bash"))
    assert command[:2] == ["backfill", "evaluate"]
    done = subprocess.run(
        [sys.executable, "-m", "backfill_lib", *command[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "upgrade"
    assert {"psi-rt.pt", "psi-rt-mc.pt", "results.json", "curves-random.png"} <= {
        p.name for p in out.iterdir()
    }
    from backfill_lib import Experiment, default_config

    demo = Experiment(
        default_config("digits", methods=("new/old", "drm", "rt", "rt+mc")), cache_dir=cache
    ).results("random")["methods"]
    results = json.loads((out / "results.json").read_text())["methods"]
    for method in ("drm", "rt", "rt+mc"):
        assert results[method]["auc_mAP"] == pytest.approx(demo[method]["auc_mAP"], abs=1e-6)
