"""bench/regime.py, the regime question's command: each number of epochs is recorded with
the configuration it was made on and read back on a rerun, with nothing cached."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def regime(out: Path, cache: Path, *epochs: str) -> str:
    command = [sys.executable, str(ROOT / "bench" / "regime.py"), "--dataset", "digits"]
    command += ["--epochs", *epochs, "--out", str(out), "--cache", str(cache)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.mark.slow
def test_the_regime_study_records_each_length_and_resumes_on_an_empty_cache(tmp_path):
    out = tmp_path / "regime.json"
    printed = regime(out, tmp_path / "cache", "1")
    record = json.loads(out.read_text())
    assert list(record) == ["1"] and record["1"]["config"]["new"]["epochs"] == 1
    assert record["1"]["config"]["validation"] is True
    row = record["1"]
    assert row["bct_compatible"] == (row["bct_t0"] > row["old/old"])
    assert row["rt - drm"][0] <= row["auc rt"] - row["auc drm"] <= row["rt - drm"][1]
    # another machine, nothing cached: the recorded length prints the same and trains nothing
    assert "trained" in printed
    assert regime(out, tmp_path / "empty", "1").splitlines() == printed.splitlines()[-2:]
    assert not (tmp_path / "empty" / "checkpoints").exists()
