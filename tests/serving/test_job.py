"""The backfill job survives kill -9 at random points, and readers see consistent states."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from backfill_lib.serving.index import BackfillIndex
from backfill_lib.serving.job import job_record, run_backfill_job

ITEMS, BATCH = 240, 16


# the job as a separate process: 8-d old and 12-d new unit embeddings, a random order; it
# prints a line as it embeds each batch, so the test knows where it is when it kills it
SCRIPT = textwrap.dedent(
    f"""
    import sys, time
    import numpy as np
    from backfill_lib.serving.index import BackfillIndex
    from backfill_lib.serving.job import run_backfill_job

    rng = np.random.default_rng(0)
    def unit(n, d):
        x = rng.standard_normal((n, d))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    old, new, order = unit({ITEMS}, 8), unit({ITEMS}, 12), rng.permutation({ITEMS})

    def embed(ids):
        print("batch", flush=True)
        time.sleep(0.02)
        return new[ids]

    run_backfill_job(sys.argv[1], order, embed, lambda: BackfillIndex(old, 12), {BATCH})
    print("finished", flush=True)
    """
)


def arrays(path):
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def order_of_script():
    rng = np.random.default_rng(0)
    rng.standard_normal((ITEMS, 8))
    rng.standard_normal((ITEMS, 12))
    return rng.permutation(ITEMS)


def assert_consistent_prefix(path, order):
    index = BackfillIndex.load(path)  # checksum and part sizes checked on load
    done = int(index.backfilled.sum())
    assert index.is_backfilled(order[:done]).all()
    assert done % BATCH == 0 or done == ITEMS  # saves fall on batch boundaries


@pytest.mark.slow
def test_a_job_killed_at_random_points_ends_as_an_uninterrupted_run(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference.npz"
    subprocess.run([sys.executable, script, reference], check=True, env=env, capture_output=True)

    path, order = tmp_path / "killed.npz", order_of_script()
    chooser = random.Random(0)
    kills = 0
    for _ in range(25):
        job = subprocess.Popen(
            [sys.executable, script, path], stdout=subprocess.PIPE, env=env, text=True
        )
        # kill while it embeds, backfills or saves: after a random number of batches, at a
        # random moment within the next one
        lines = [job.stdout.readline().strip() for _ in range(chooser.randint(1, 3))]
        if all(line == "batch" for line in lines):
            time.sleep(chooser.uniform(0, 0.03))
            os.kill(job.pid, signal.SIGKILL)
        out, _ = job.communicate()
        if job.returncode == 0 and "finished" in [*lines, *out.split()]:
            break
        kills += 1
        # a reader sees the last save: consistent, a prefix of the order, at a batch boundary
        if path.exists():
            assert_consistent_prefix(path, order)
    assert kills >= 3, "the job finished before it could be interrupted a few times"
    assert job.returncode == 0
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file of a killed save is left
    reached, expected = arrays(path), arrays(reference)
    assert reached.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(reached[name], expected[name], err_msg=name)


def test_a_resume_with_another_batch_size_or_order_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    old = rng.standard_normal((40, 4)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    order = rng.permutation(40)

    def embed(ids):
        return old[ids]

    path = tmp_path / "index.npz"
    report = run_backfill_job(path, order, embed, lambda: BackfillIndex(old, 4), batch_size=8)
    assert (report.resumed_at, report.done, report.batches, report.saves) == (0, 40, 5, 5)
    again = run_backfill_job(path, order, embed, lambda: BackfillIndex(old, 4), batch_size=8)
    assert (again.resumed_at, again.batches) == (40, 0)  # nothing left to do
    sliced = tmp_path / "sliced.npz"
    for resumed_at in (0, 16, 32):  # slices of 2 batches: 16 items a run, then the rest
        report = run_backfill_job(
            sliced, order, embed, lambda: BackfillIndex(old, 4), batch_size=8, max_batches=2
        )
        assert report.resumed_at == resumed_at and report.saves == report.batches
    assert report.done == 40 and report.batches == 1
    assert sliced.read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="another batch_size"):
        run_backfill_job(path, order, embed, lambda: BackfillIndex(old, 4), batch_size=4)
    with pytest.raises(ValueError, match="another order_sha256"):
        run_backfill_job(path, order[::-1], embed, lambda: BackfillIndex(old, 4), batch_size=8)


def test_a_first_run_that_failed_before_saving_binds_nothing(tmp_path):
    """A first run that fails before its index is saved leaves a record; a retry with
    another batch size is still a first run (nothing of the old one was kept)."""
    rng = np.random.default_rng(2)
    old = rng.standard_normal((20, 4)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    order, path = rng.permutation(20), tmp_path / "index.npz"

    def broken() -> BackfillIndex:
        raise ValueError("the old embeddings could not be read")

    with pytest.raises(ValueError, match="could not be read"):
        run_backfill_job(path, order, lambda ids: old[ids], broken, batch_size=8)
    assert job_record(path)["batch_size"] == 8 and not path.exists()
    report = run_backfill_job(
        path, order, lambda ids: old[ids], lambda: BackfillIndex(old, 4), batch_size=4
    )
    assert report.done == 20 and job_record(path)["batch_size"] == 4


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"], ids=["not JSON", "a list"])
def test_a_damaged_job_record_is_named_with_the_fix(tmp_path, content):
    path = tmp_path / "index.npz"
    (tmp_path / "index.npz.job.json").write_text(content)
    with pytest.raises(ValueError, match=r"index.npz.job.json .*delete it"):
        job_record(path)
