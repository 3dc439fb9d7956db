"""The install instructions agree with each other: pyproject, environment.yml, README, CI."""

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = set(project["dependencies"]).union(*extras.values())
    assert set(extras["course"]) <= set(extras["dev"])  # the test install runs the course too
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == wanted
    assert "-e ." in pip


def readme_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", (ROOT / "README.md").read_text())
    assert match, f"README.md lacks the {marker} block"
    return match.group(1)


def test_ci_runs_the_readme_test_command_and_it_runs_everything():
    """.ci/run's own extraction of the README block yields the block; the block installs
    the project and runs every test: the notebooks (--nbval-lax) and the slow and browser
    tests that a bare ``pytest`` leaves out (-m "")."""
    ci = (ROOT / ".ci" / "run").read_text()
    extraction = re.search(r"^test_command=\$\((awk .+)\)$", ci, re.MULTILINE)
    assert extraction, ".ci/run no longer reads the test command out of README.md"
    extracted = subprocess.run(
        ["bash", "-c", extraction.group(1)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    command = readme_block("test-command")
    assert extracted == command
    assert 'pip install -e ".[dev]"' in command
    assert re.search(r"pytest --nbval-lax -m \"\"$", command), command


def test_the_readme_demo_command_installs_and_runs_the_demo():
    command = readme_block("demo-command")
    assert "pip install -e ." in command and command.endswith("backfill demo")


def test_a_plain_install_gets_every_sub_package():
    """pyproject's package list is what setuptools finds: every folder with an
    ``__init__.py`` (a non-editable install carries only those)."""
    setuptools = pytest.importorskip("setuptools")
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = set(setuptools.find_packages(str(ROOT), include=find["find"]["include"]))
    packages = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "backfill_lib").rglob("__init__.py")
    }
    assert found == packages
