"""The notebooks are committed clean and teach with the library, not beside it."""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_nine_numbered_notebooks_exist():
    assert [p.stem[:3] for p in NOTEBOOKS] == [f"{i:02d}_" for i in range(1, 10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_or_widget_state(path):
    book = json.loads(path.read_text())
    assert "widgets" not in book["metadata"]
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def is_exercise_stub(cell: dict) -> bool:
    """A cell where the student writes a function: its first line names the exercise."""
    source = "".join(cell["source"])
    return (
        cell["cell_type"] == "code"
        and source.startswith("# Exercise")
        and "(implement)" in (source.splitlines()[0])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_the_library_and_define_no_functions(path):
    """Functions are defined only in the exercise stubs, for the student to write."""
    book = json.loads(path.read_text())
    cells = [c for c in book["cells"] if c["cell_type"] == "code"]
    code = "\n".join("".join(c["source"]) for c in cells if not is_exercise_stub(c))
    markdown = [c for c in book["cells"] if c["cell_type"] == "markdown"]
    assert "from backfill_lib" in code
    assert not re.search(r"^\s*(def|class) ", code, re.MULTILINE)
    assert len(markdown) >= 3  # prose between the cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_stub_has_its_solution_s_signature_and_returns_nothing_yet(path):
    """The student fills in the stub; the solution file answers it with the same name and
    parameters, and the check cell after the stub runs (tests/project/test_solutions.py)."""
    cells = json.loads(path.read_text())["cells"]
    stubs = [i for i, c in enumerate(cells) if is_exercise_stub(c)]
    assert stubs, "no exercise stub"
    solution = ast.parse((path.parent / "solutions" / f"ex{path.stem[:2]}.py").read_text())
    solved = {
        f.name: [a.arg for a in f.args.args]
        for f in solution.body
        if isinstance(f, ast.FunctionDef)
    }
    for i in stubs:
        for function in ast.parse("".join(cells[i]["source"])).body:
            assert isinstance(function, ast.FunctionDef)
            assert [a.arg for a in function.args.args] == solved[function.name], function.name
            assert (
                isinstance(function.body[-1], ast.Return) and function.body[-1].value.value is None
            )
        check = "".join(cells[i + 1]["source"])
        assert check.startswith("# Exercise") and "not done yet" in check and "correct" in check


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_starts_from_the_one_setup_helper(path):
    book = json.loads(path.read_text())
    first = next("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "code")
    assert "experiment=notebook_experiment(methods=(" in "".join(first.split())  # any layout
    assert "Experiment(" not in first and "default_config" not in first


# what the fallback options read the number of classes through (stubbed: no CIFAR-10 files)
CLASSES_OF = "backfill_lib.pipeline.config.dataset_classes"


def test_the_setup_helper_reads_the_dataset_from_its_argument_or_the_environment(
    monkeypatch, capsys
):
    from backfill_lib.pipeline.notebook import DATASET_ENV, notebook_experiment

    monkeypatch.delenv(DATASET_ENV, raising=False)
    monkeypatch.setattr(CLASSES_OF, lambda *args: 10)  # no CIFAR-10 files needed
    assert notebook_experiment(methods=("drm",)).config.dataset == "digits"
    assert "digits (cpu profile), methods drm" in capsys.readouterr().out
    monkeypatch.setenv(DATASET_ENV, "cifar10")
    experiment = notebook_experiment(methods=("rt",))
    assert (experiment.config.dataset, experiment.config.methods[-1]) == ("cifar10", "rt")
    assert notebook_experiment(("rt",), dataset="digits").config.dataset == "digits"


def test_the_setup_helper_picks_the_gpu_profile_when_a_gpu_is_present(monkeypatch, capsys):
    from backfill_lib.pipeline.notebook import DATASET_ENV, PROFILE_ENV, notebook_experiment

    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setattr(CLASSES_OF, lambda *args: 10)  # no CIFAR-10 files needed
    monkeypatch.setenv(DATASET_ENV, "cifar10")
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert notebook_experiment(("rt",)).config.new.arch == "resnet18"
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert notebook_experiment(("rt",)).config.new.arch == "airbench"
    monkeypatch.setenv(PROFILE_ENV, "gpu")  # the environment decides over the hardware
    assert notebook_experiment(("rt",)).config.new.arch == "resnet18"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_states_its_objectives_and_ends_with_checked_exercises(path):
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
    summary = next(i for i, c in enumerate(cells) if c.startswith("## Summary"))
    intro, outro = cells[1], cells[summary]
    assert all(c.startswith("# Exercise") for c in cells[summary + 1 :])  # stubs and checks
    objectives = intro.split("**You will learn**")[1].split("**Prerequisites.**")[0]
    assert 3 <= objectives.count("\n* ") <= 5
    for part in ("**Prerequisites.**", "**Run time**", "**Library modules used:**"):
        assert part in intro
    assert "[glossary](../docs/glossary.md)" in intro  # words defined before use, one place
    assert outro.startswith("## Summary") and "## Exercises" in outro
    exercises = re.findall(r"^\d\. \*\((\w[\w ]*)\)\*", outro, re.MULTILINE)
    assert 3 <= len(exercises) <= 4 and {"implement", "predict", "conceptual"} <= set(exercises)
    solution = path.parent / "solutions" / f"ex{path.stem[:2]}.py"
    conceptual = exercises.index("conceptual") + 1
    assert f"Exercise {conceptual} (conceptual)" in solution.read_text()  # its answer
    assert f"(solutions/{solution.name})" in outro and solution.exists()
    for name in re.findall(r"`(\w+)`", outro.split("Solutions:")[1]):
        if name != "tests":
            assert f"def {name}(" in solution.read_text(), f"{solution.name} lacks {name}"
