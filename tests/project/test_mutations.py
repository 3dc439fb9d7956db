"""The tests can fail for the reason their names give: each row breaks one thing in a copy of
the library, on purpose, and the test that guards it must then fail.

A code row names a function by module and qualified name, and what to replace in it, as
code: both are compared as syntax trees, so formatting, comments and where the function sits
in its file do not matter; the text must occur exactly once in that function. A text row
breaks a line of a file that is not code (the README, CI). One pytest run per row in a copy
of the project (the installed package is left alone), so the whole table is ``slow``. A row
that no longer applies (the function or its code changed) fails too: update the row with
the code.
"""

import ast
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

AUGMENT = "tests/data/test_augment.py::test_augment_translates_and_flips_colour_images_only"
ADVBCT = (
    "tests/methods/test_advbct.py::test_advbct_trains_the_discriminator_and_reverses_its_gradient"
)
L2_SQUARED = "tests/methods/test_l2.py::test_l2_is_a_mean_squared_distance"
RT_SQUARED = "tests/core/test_transformation.py::test_regression_is_a_mean_squared_distance"
FIXED_TARGET = (
    "tests/core/test_transformation.py::test_regression_loss_moves_only_the_transformation"
)
SPREAD = "tests/pipeline/test_reproduce.py::test_spread_is_the_mean_and_sample_sd_over_seeds"
CI = "tests/project/test_packaging.py::test_ci_runs_the_readme_test_command_and_it_runs_everything"
TRAINED_INDEX = (
    "tests/serving/test_index.py::"
    "test_a_factory_that_needs_training_trains_each_part_or_says_what_to_give"
)
EXACT_INDEX = "tests/serving/test_index.py::test_search_equals_the_brute_force_merged_ranking"

# (what is broken, module, function, its code, the broken code, the test that must catch it)
CODE_MUTATIONS = [
    ("grey images flipped", "backfill_lib.data.augment", "augment", "c == 3", "c >= 1", AUGMENT),
    (
        "colour images never flipped",
        "backfill_lib.data.augment",
        "augment",
        "c == 3",
        "c == 4",
        AUGMENT,
    ),
    (
        "one row shift for every image",
        "backfill_lib.data.augment",
        "augment",
        "dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)",
        "dy = torch.full((b,), pad).to(dev)",
        AUGMENT,
    ),
    ("shifts up to H/4", "backfill_lib.data.augment", "augment", "h // 8", "h // 4", AUGMENT),
    (
        "the generator ignored",
        "backfill_lib.data.augment",
        "augment",
        "dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)",
        "dx = torch.randint(0, 2 * pad + 1, (b,)).to(dev)",
        AUGMENT,
    ),
    (
        "reversal keeps the sign",
        "backfill_lib.methods.advbct",
        "_GradientReversal.backward",
        "-ctx.alpha * grad",
        "ctx.alpha * grad",
        ADVBCT,
    ),
    (
        "reversal at full scale from the start",
        "backfill_lib.methods.advbct",
        "AdvBCTLoss.forward",
        "gradient_reversal(embeddings, reversal_scale(progress))",
        "gradient_reversal(embeddings, 1.0)",
        ADVBCT,
    ),
    (
        "no reversal layer",
        "backfill_lib.methods.advbct",
        "AdvBCTLoss.forward",
        "gradient_reversal(embeddings, reversal_scale(progress))",
        "embeddings",
        ADVBCT,
    ),
    (
        "L2 as a distance, not squared",
        "backfill_lib.methods.l2",
        "L2Loss.forward",
        "(embeddings - old).pow(2).sum(1)",
        "(embeddings - old).norm(dim=1)",
        L2_SQUARED,
    ),
    (
        "regression summed over rows",
        "backfill_lib.core.transformation",
        "regression_loss",
        "(transformed - old_embeddings.detach()).pow(2).sum(1).mean()",
        "(transformed - old_embeddings.detach()).pow(2).sum()",
        RT_SQUARED,
    ),
    (
        "regression moves the old embeddings",
        "backfill_lib.core.transformation",
        "regression_loss",
        "old_embeddings.detach()",
        "old_embeddings",
        FIXED_TARGET,
    ),
    (
        "population sd",
        "backfill_lib.pipeline.reproduce",
        "spread_over_seeds",
        "statistics.stdev(values)",
        "statistics.pstdev(values)",
        SPREAD,
    ),
    (
        "median for mean",
        "backfill_lib.pipeline.reproduce",
        "spread_over_seeds",
        "statistics.fmean(values)",
        "statistics.median(values)",
        SPREAD,
    ),
    (
        "near-ties counted as beating old/old",
        "backfill_lib.pipeline.reproduce",
        "spread_over_seeds",
        '_metric(r[order]["methods"][method], "mAP_t0")'
        ' > _metric(r[order]["methods"]["old/old"], "mAP_t0")',
        '_metric(r[order]["methods"][method], "mAP_t0")'
        ' >= _metric(r[order]["methods"]["old/old"], "mAP_t0") - 0.05',
        SPREAD,
    ),
    (
        "IVF wrapped in faiss's id map",
        "backfill_lib.serving.index",
        "BackfillIndex._make_index",
        "inner if faiss.try_extract_index_ivf(inner) else faiss.IndexIDMap2(inner)",
        "faiss.IndexIDMap2(inner)",
        EXACT_INDEX,
    ),
    (
        "new_training ignored",
        "backfill_lib.serving.index",
        "BackfillIndex.__init__",
        'self._train(self._new, training, "new part")',
        "pass",
        TRAINED_INDEX,
    ),
]

# (what is broken, file, its text, the broken text, the test that must catch it)
TEXT_MUTATIONS = [
    ("README's tests leave out slow ones", "README.md", '--nbval-lax -m ""', "--nbval-lax", CI),
    (
        "README's tests skip the install",
        "README.md",
        'pip install -e ".[dev]"',
        "pip install pytest",
        CI,
    ),
    (
        ".ci/run reads another block",
        ".ci/run",
        "/<!-- test-command -->/",
        "/<!-- demo-command -->/",
        CI,
    ),
]


def _fragment(code: str) -> ast.AST:
    """``code`` as the node it is: an expression, or else one statement."""
    (statement,) = ast.parse(code).body
    return statement.value if isinstance(statement, ast.Expr) else statement


def _function(tree: ast.Module, qualname: str) -> ast.AST:
    node: ast.AST = tree
    for name in qualname.split("."):
        found = [
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.FunctionDef | ast.ClassDef) and child.name == name
        ]
        assert len(found) == 1, f"no single {name!r} in {qualname}"
        node = found[0]
    return node


def mutate(source: str, qualname: str, code: str, broken: str) -> str:
    """``source`` with ``code`` replaced by ``broken`` inside function ``qualname`` (matched
    as syntax trees); ``code`` must occur exactly once there."""
    tree = ast.parse(source)
    wanted, replacement = _fragment(code), _fragment(broken)
    if isinstance(wanted, ast.stmt) or isinstance(replacement, ast.stmt):  # swap statements
        wanted, replacement = (
            n if isinstance(n, ast.stmt) else ast.Expr(n) for n in (wanted, replacement)
        )
    wanted_dump = ast.dump(wanted)

    class Swap(ast.NodeTransformer):
        swaps = 0

        def visit(self, node: ast.AST) -> ast.AST:
            if ast.dump(node) == wanted_dump:
                Swap.swaps += 1
                return copy.deepcopy(replacement)
            return self.generic_visit(node)

    Swap().visit(_function(tree, qualname))
    assert Swap.swaps == 1, f"{qualname} holds {Swap.swaps} copies of {code!r}, not one"
    return ast.unparse(ast.fix_missing_locations(tree))


def copy_project(to: Path) -> None:
    for part in ("backfill_lib", "tests", ".ci"):
        shutil.copytree(ROOT / part, to / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("conftest.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, to / part)


def run_tests(folder: Path, *tests: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True)


def test_a_code_row_is_found_by_function_whatever_the_formatting():
    """A row survives a reformat or a move of its function within the file, and is refused
    when its code is not in the named function exactly once."""
    source = (
        "def f(x):\n    # a comment\n    return (x +\n        1) * 2\n\n\n"
        "def g(x):\n    return x + 1\n"
    )
    assert "return (x - 1) * 2" in mutate(source, "f", "x + 1", "x - 1")
    assert "return x + 1" in mutate(source, "f", "x + 1", "x - 1")  # g is left alone
    with pytest.raises(AssertionError, match="holds 0 copies"):
        mutate(source, "f", "x + 2", "x - 1")
    with pytest.raises(AssertionError, match="no single 'h'"):
        mutate(source, "h", "x + 1", "x - 1")


@pytest.mark.slow
def test_the_unbroken_copy_passes_every_test_of_the_table(tmp_path):
    copy_project(tmp_path)
    tests = {row[-1] for row in CODE_MUTATIONS + TEXT_MUTATIONS}
    run = run_tests(tmp_path, *sorted(tests))
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "module", "function", "code", "broken", "test"),
    CODE_MUTATIONS,
    ids=[row[0] for row in CODE_MUTATIONS],
)
def test_a_deliberately_broken_function_fails_its_test(
    tmp_path, name, module, function, code, broken, test
):
    copy_project(tmp_path)
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.write_text(mutate(path.read_text(), function, code, broken))
    run = run_tests(tmp_path, "-x", test)
    assert run.returncode == 1, f"{name}: {test} did not fail\n{run.stdout[-3000:]}"  # 1: failed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "path", "text", "broken", "test"), TEXT_MUTATIONS, ids=[r[0] for r in TEXT_MUTATIONS]
)
def test_a_deliberately_broken_file_fails_its_test(tmp_path, name, path, text, broken, test):
    copy_project(tmp_path)
    source = (tmp_path / path).read_text()
    assert source.count(text) == 1, f"{path} no longer holds the text this row breaks"
    (tmp_path / path).write_text(source.replace(text, broken))
    run = run_tests(tmp_path, "-x", test)
    assert run.returncode == 1, f"{name}: {test} did not fail\n{run.stdout[-3000:]}"  # 1: failed
