"""docs/course.md, the students' front door: its learning path walks every notebook, its
setup names an install that exists, and its cost table quotes bench/notebooks.json."""

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "course.md").read_text()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def test_the_learning_path_links_every_notebook_in_order():
    path = PAGE.split("## A two-week path")[1].split("\n## ")[0]
    linked = re.findall(r"\(\.\./notebooks/(0\d_\w+)\.ipynb\)", path)
    assert linked == [n.stem for n in NOTEBOOKS]
    for stem in linked:  # the readings column names a paper of METHOD.md or the docs
        row = next(line for line in path.splitlines() if stem in line)
        assert row.count("|") == 6 and row.split("|")[-2].strip(), row


def test_the_setup_installs_the_course_extra_that_pyproject_defines():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert 'pip install -e ".[course]"' in PAGE
    assert any(requirement.startswith("jupyterlab") for requirement in extras["course"])
    for where in ("**A laptop without a GPU.**", "**A shared JupyterHub.**", "**Colab.**"):
        assert where in PAGE


def test_the_cost_table_quotes_the_notebook_benchmark():
    record = json.loads((ROOT / "bench" / "notebooks.json").read_text())
    expected = [
        f"| {name} | {figures['seconds'] / 60:.1f} | {figures['peak_gib']:.2f} |"
        for name, figures in record["notebooks"].items()
    ]
    for name in [key for key in record if key.endswith(" at 1,000,000 items")]:
        figures = record[name]
        expected.append(f"| {name} | {figures['seconds'] / 60:.1f} | {figures['peak_gib']:.2f} |")
    table = PAGE.split("<!-- notebook-costs -->\n")[1].split("\n\n")[0].splitlines()[2:]
    assert table == expected
    assert [name for name in record["notebooks"]] == [n.stem for n in NOTEBOOKS]
    assert record["machine"] in PAGE and record["date"] in PAGE


def test_every_notebook_states_the_run_time_and_memory_the_benchmark_measured():
    record = json.loads((ROOT / "bench" / "notebooks.json").read_text())["notebooks"]
    for notebook in NOTEBOOKS:
        intro = "".join(json.loads(notebook.read_text())["cells"][1]["source"])
        figures = record[notebook.stem]
        run_time = intro.split("**Run time**")[1].split("\n\n")[0]
        assert f"{figures['peak_gib']:.2f} GiB" in run_time, notebook.stem
        assert (
            f"{figures['seconds']:.0f} s" in run_time
            or f"{figures['seconds'] / 60:.1f} min" in run_time
        ), notebook.stem
