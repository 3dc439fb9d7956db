"""Storage: atomic writes keep the previous file on failure, a dead writer's temporary file
is removed, a full disk is one line naming the path, and a damaged file is named (and a
derived one computed again)."""

import errno
import os
import shutil

import pytest
import torch

from backfill_lib.storage import (
    CorruptFileError,
    OutOfSpaceError,
    atomic_write,
    load_derived,
    load_json,
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


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch):
    """The device runs out of space while a file is written: one OSError line that says
    which path ran out, whether the writer reports ENOSPC itself or (torch) wraps it in a
    RuntimeError; the previous file is kept and no temporary is left."""
    target = tmp_path / "checkpoint.pt"
    target.write_text("previous")

    def no_space(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutOfSpaceError, match=r"no space left to write .*checkpoint.pt") as err:
        atomic_write(target, no_space)
    assert "\n" not in str(err.value) and err.value.errno == errno.ENOSPC

    def torch_on_a_full_disk(tmp):  # what torch.save raises when the device is full
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64")

    monkeypatch.setattr(
        "backfill_lib.storage.shutil.disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 0)
    )
    with pytest.raises(OutOfSpaceError, match="0 bytes free"):
        atomic_write(target, torch_on_a_full_disk)
    assert target.read_text() == "previous" and len(list(tmp_path.iterdir())) == 1


def test_a_write_that_fails_otherwise_keeps_its_own_error(tmp_path):
    def broken(tmp):
        raise RuntimeError("not a space problem")

    with pytest.raises(RuntimeError, match="not a space problem"):
        atomic_write(tmp_path / "x", broken)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "is not valid JSON"), ("[]", "holds a JSON list, where a dict was expected")],
)
def test_a_json_file_of_another_shape_is_named_with_the_fix(tmp_path, content, message):
    (tmp_path / "summary.json").write_text(content)
    with pytest.raises(CorruptFileError, match=rf"summary.json {message}.*rerun it"):
        load_json(tmp_path / "summary.json", dict, "rerun it")
