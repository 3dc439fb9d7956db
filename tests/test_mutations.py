"""The tests can fail for the reason their names give: each row breaks one thing in a copy of
the library, on purpose, and the test that guards it must then fail.

One pytest run per row in a copy of the project (the installed package is left alone), so
the whole table is ``slow``. A row that no longer applies (its text was edited) fails too:
update the row with the code.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LOSSES, DATA, INDEX = "backfill_lib/losses.py", "backfill_lib/data.py", "backfill_lib/index.py"
REPRODUCE = "backfill_lib/reproduce.py"
AUGMENT = "tests/test_data.py::test_augment_translates_and_flips_colour_images_only"
ADVBCT = "tests/test_losses.py::test_advbct_trains_the_discriminator_and_reverses_its_gradient"
SQUARED = "tests/test_losses.py::test_l2_and_regression_are_mean_squared_distances"
FIXED_TARGET = "tests/test_losses.py::test_regression_loss_moves_only_the_transformation"
SPREAD = "tests/test_reproduce.py::test_spread_is_the_mean_and_sample_sd_over_seeds"
CI = "tests/test_packaging.py::test_ci_runs_the_readme_test_command_and_it_runs_everything"
TRAINED_INDEX = (
    "tests/test_index.py::test_a_factory_that_needs_training_trains_each_part_or_says_what_to_give"  # noqa: E501
)
EXACT_INDEX = "tests/test_index.py::test_search_equals_the_brute_force_merged_ranking"

# (what is broken, file, its text, the broken text, the test that must catch it)
MUTATIONS = [
    (
        "grey images flipped",
        DATA,
        "    if c == 3:\n        flip",
        "    if c >= 1:\n        flip",
        AUGMENT,
    ),
    (
        "colour images never flipped",
        DATA,
        "    if c == 3:\n        flip",
        "    if c == 4:\n        flip",
        AUGMENT,
    ),
    (
        "one row shift for every image",
        DATA,
        "dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)",
        "dy = torch.full((b,), pad).to(dev)",
        AUGMENT,
    ),
    ("shifts up to H/4", DATA, "pad = max(1, h // 8)", "pad = max(1, h // 4)", AUGMENT),
    (
        "the generator ignored",
        DATA,
        "dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)",
        "dx = torch.randint(0, 2 * pad + 1, (b,))",
        AUGMENT,
    ),
    (
        "reversal keeps the sign",
        LOSSES,
        "return -ctx.alpha * grad",
        "return ctx.alpha * grad",
        ADVBCT,
    ),
    (
        "reversal at full scale from the start",
        LOSSES,
        "gradient_reversal(new_embeddings, reversal_scale(progress))",
        "gradient_reversal(new_embeddings, 1.0)",
        ADVBCT,
    ),
    (
        "no reversal layer",
        LOSSES,
        "gradient_reversal(new_embeddings, reversal_scale(progress))",
        "new_embeddings",
        ADVBCT,
    ),
    (
        "L2 as a distance, not squared",
        LOSSES,
        "(new_embeddings - old_embeddings).pow(2).sum(1).mean()",
        "(new_embeddings - old_embeddings).norm(dim=1).mean()",
        SQUARED,
    ),
    (
        "regression summed over rows",
        LOSSES,
        "(transformed - old_embeddings.detach()).pow(2).sum(1).mean()",
        "(transformed - old_embeddings.detach()).pow(2).sum()",
        SQUARED,
    ),
    (
        "regression moves the old embeddings",
        LOSSES,
        "(transformed - old_embeddings.detach())",
        "(transformed - old_embeddings)",
        FIXED_TARGET,
    ),
    ("population sd", REPRODUCE, "statistics.stdev(values)", "statistics.pstdev(values)", SPREAD),
    (
        "median for mean",
        REPRODUCE,
        '"mean": statistics.fmean(values)',
        '"mean": statistics.median(values)',
        SPREAD,
    ),
    (
        "near-ties counted as beating old/old",
        REPRODUCE,
        '                > _metric(r[order]["methods"]["old/old"], "mAP_t0")',
        '                >= _metric(r[order]["methods"]["old/old"], "mAP_t0") - 0.05',
        SPREAD,
    ),
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
    (
        "IVF wrapped in faiss's id map",
        INDEX,
        "return inner if faiss.try_extract_index_ivf(inner) else faiss.IndexIDMap2(inner)",
        "return faiss.IndexIDMap2(inner)",
        EXACT_INDEX,
    ),
    (
        "new_training ignored",
        INDEX,
        'self._train(self._new, training, "new part")',
        "pass",
        TRAINED_INDEX,
    ),
]


def copy_project(to: Path) -> None:
    for part in ("backfill_lib", "tests", ".ci"):
        shutil.copytree(ROOT / part, to / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("conftest.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, to / part)


def run_tests(folder: Path, *tests: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True)


@pytest.mark.slow
def test_the_unbroken_copy_passes_every_test_of_the_table(tmp_path):
    copy_project(tmp_path)
    run = run_tests(tmp_path, *sorted({row[-1] for row in MUTATIONS}))
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "path", "text", "broken", "test"), MUTATIONS, ids=[row[0] for row in MUTATIONS]
)
def test_a_deliberately_broken_implementation_fails_its_test(
    tmp_path, name, path, text, broken, test
):  # noqa: E501
    copy_project(tmp_path)
    source = (tmp_path / path).read_text()
    assert source.count(text) == 1, f"{path} no longer holds the text this row breaks"
    (tmp_path / path).write_text(source.replace(text, broken))
    run = run_tests(tmp_path, "-x", test)
    assert run.returncode == 1, f"{name}: {test} did not fail\n{run.stdout[-3000:]}"  # 1: failed
