"""Storage: atomic writes keep the previous file on failure, a dead writer's temporary file
is removed, and a damaged file is named (and a derived one computed again)."""

import os

import pytest
import torch

from backfill_lib.storage import (
    CorruptFileError,
    atomic_write,
    load_derived,
    load_torch,
    save_torch,
)


def test_atomic_writes_keep_the_old_file_on_failure_and_get_the_usual_mode(tmp_path):
    path = atomic_write(tmp_path / "figure.txt", lambda tmp: tmp.write_text("first"))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.txt"]


def test_a_killed_writer_leaves_a_temporary_file_that_the_next_write_removes(tmp_path):
    import subprocess
    import sys

    path = save_torch({"x": 1}, tmp_path / "emb.pt")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    for _ in range(3):  # a writer killed mid-save, three times
        (tmp_path / f".emb.pt.{dead_pid}.x{_}.tmp").write_bytes(b"half a tensor")
    alive = tmp_path / f".emb.pt.{os.getppid()}.y.tmp"  # a live writer's file is left alone
    alive.write_bytes(b"in progress")
    save_torch({"x": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "emb.pt"]
    assert load_torch(path) == {"x": 2}


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", b"not a tensor file at all"])
def test_a_damaged_file_is_named_and_a_derived_one_is_computed_again(tmp_path, damage):
    path = save_torch({"x": torch.ones(1000)}, tmp_path / "curve.pt")
    path.write_bytes(damage or path.read_bytes()[:0])
    with pytest.raises(CorruptFileError, match=r"curve.pt cannot be read .*delete it and rerun"):
        load_torch(path)
    with pytest.warns(UserWarning, match=r"curve.pt was damaged .*moved to .*curve.pt.corrupt"):
        assert load_derived(path) is None
    assert not path.exists() and (tmp_path / "curve.pt.corrupt").read_bytes() == damage
    assert load_derived(path) is None  # missing: nothing to warn about
