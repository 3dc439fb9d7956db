"""The public API is what docs/api.md lists, and the package type-checks under the mypy
settings in pyproject.toml ([tool.mypy])."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import backfill_lib

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mypy_passes_on_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )  # "No module named mypy": install the dev extras (README's test command does)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_public_api_is_listed_in_docs_api_md():
    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| `(backfill_lib[\w.]*)` \|", page, flags=re.M))
    assert sorted(documented) == sorted(backfill_lib.__all__)
    for name in backfill_lib.__all__:
        assert getattr(backfill_lib, name).__doc__, f"{name} has no docstring"
        assert getattr(backfill_lib, name).__module__ == documented[name], name


def test_no_exported_name_hides_a_module():
    package = ROOT / "backfill_lib"
    modules = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir()}
    assert not modules & set(backfill_lib.__all__)


def test_every_module_has_a_section_in_docs_reference_md():
    page = (ROOT / "docs" / "reference.md").read_text()
    listed = set(re.findall(r"^::: (backfill_lib[\w.]*)$", page, flags=re.M))
    package = ROOT / "backfill_lib"
    modules = {
        ".".join(("backfill_lib", *path.relative_to(package).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in package.rglob("*.py")
    } - {"backfill_lib", "backfill_lib.__main__"}  # the surface: api.md lists it
    assert listed == modules, (
        f"missing {sorted(modules - listed)}, stale {sorted(listed - modules)}"
    )
