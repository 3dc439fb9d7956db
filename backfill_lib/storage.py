"""Where things are kept: the cache directory, configuration keys and atomic writes.

Everything the library trains or computes is stored under a key derived from the full
configuration that produced it (``config_key``), so a re-run reuses it and a changed
configuration never silently reuses a stale file. Every write goes to a temporary file in
the same directory and is then renamed over the target (``os.replace`` is atomic on POSIX),
so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CACHE_ENV",
    "FILE_MODE",
    "FORMAT_VERSION",
    "OutOfSpaceError",
    "as_json",
    "atomic_write",
    "config_key",
    "ConfigMismatchError",
    "content_key",
    "CorruptFileError",
    "default_cache_dir",
    "exclusive",
    "load_derived",
    "load_json",
    "load_torch",
    "save_json",
    "save_torch",
]

CACHE_ENV = "BACKFILL_CACHE"
# Bumped whenever model or training code changes what a configuration produces, so that
# stale checkpoints and embeddings are never reused.
FORMAT_VERSION = 1


def _file_mode() -> int:
    """The mode ``open()`` gives a new file under the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def default_cache_dir() -> Path:
    """``$BACKFILL_CACHE`` if set, else ``~/.cache/backfill_lib``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "backfill_lib"))


def config_key(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable configuration and ``FORMAT_VERSION``.

    Key order does not matter.
    """
    text = json.dumps(
        {"format": FORMAT_VERSION, **config}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_key(arrays: Iterable[torch.Tensor | np.ndarray], config: Mapping[str, Any]) -> str:
    """A short hash of arrays (dtype, shape and every value) and a configuration: the key of
    a result computed from data, such as a metric curve, so that different inputs can never
    share a stored file."""
    digest = hashlib.sha256(config_key(config).encode())
    for array in arrays:
        values = np.ascontiguousarray(torch.as_tensor(array).detach().cpu().numpy())
        digest.update(f"{values.dtype}{values.shape}".encode())
        digest.update(values.data)
    return digest.hexdigest()[:16]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers that died (their pid is gone)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.").split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content. The file
    and its folder are fsynced, so a power cut after the rename cannot leave an empty file.
    The temporary file is named ``.<name>.<pid>.<random>.tmp``: the next write of ``path``
    removes those whose process is no longer running.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
        )
        os.close(fd)
    except OSError as err:
        _raise_if_out_of_space(path, err)
        raise
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes it private (0600); give it open()'s default
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except Exception as err:  # torch reports a full disk as a RuntimeError
        _raise_if_out_of_space(path, err)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OutOfSpaceError(OSError):
    """The device holding a file ran out of space (or quota) while it was written."""


def _raise_if_out_of_space(path: Path, err: Exception) -> None:
    """Raise one :class:`OutOfSpaceError` line for a write of ``path`` that failed for want
    of space: ``err`` says so (ENOSPC, EDQUOT), or the device has less than 1 MiB left."""
    full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
    folder = next((p for p in (path.parent, *path.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(folder).free
    if full or free < 1 << 20:
        raise OutOfSpaceError(
            errno.ENOSPC,
            f"no space left to write {path} ({free:,} bytes free on the device of {folder}): "
            "free some space or point --cache / --out at another disk",
        ) from err


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` while computing ``path``.

    Two processes about to compute the same file take turns: the second waits, then finds
    the file done. POSIX ``flock``, released by the kernel if the holder dies; where it does
    not exist (Windows) this does nothing. The small ``.lock`` file is left in place
    (removing it would race with a waiting process).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    lock = Path(path).with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def as_json(value: Any) -> Any:
    """``value`` as it reads back from a JSON file (tuples as lists, other objects as their
    text), so that a configuration compares equal to the one a file recorded."""
    return json.loads(json.dumps(value, default=str))


def save_json(obj: Any, path: str | Path) -> Path:
    """Pretty JSON through :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0][:200]


class ConfigMismatchError(ValueError):
    """A stored file was produced by a different configuration than the one asked for."""


class CorruptFileError(ValueError):
    """A stored file cannot be read (truncated, empty, or not written by this library)."""


def load_json(path: str | Path, kind: type = dict, fix: str = "delete it and rerun") -> Any:
    """The JSON value in ``path``, which must be a ``kind`` (an object by default); a
    :class:`CorruptFileError` naming the file and ``fix`` when it is not valid JSON or holds
    another type."""
    try:
        value = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(value, kind):
        raise CorruptFileError(
            f"{path} holds a JSON {type(value).__name__}, where a {kind.__name__} was expected; "
            f"{fix}"
        )
    return value


def load_torch(path: str | Path, expected_config: Mapping[str, Any] | None = None) -> Any:
    """Load a file written by :func:`save_torch` with ``weights_only=True``.

    When ``expected_config`` is given, the file must be a dict whose ``"config"`` equals
    it; otherwise a :class:`ConfigMismatchError` names the differing fields.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CorruptFileError(
            f"{path} cannot be read ({type(err).__name__}: {_first_line(err)}); "
            "it is damaged or was not written by backfill_lib: delete it and rerun"
        ) from err
    if expected_config is not None:
        stored = obj.get("config") if isinstance(obj, dict) else None
        expected = as_json(expected_config)
        if stored != expected:
            stored = stored or {}
            fields = sorted(
                k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)
            )
            raise ConfigMismatchError(
                f"{path} was produced by another configuration (fields that differ: "
                f"{', '.join(fields) or 'format'}). Delete the file, or ask for the "
                "configuration it was trained with."
            )
    return obj


def load_derived(path: str | Path, expected_config: Mapping[str, Any] | None = None) -> Any:
    """:func:`load_torch` for a file that can be computed again (decoded images, embeddings,
    curves, a partial checkpoint): ``None`` when it is missing or damaged. A damaged file is
    renamed to ``<name>.corrupt`` (kept for inspection) with a warning, so the caller
    recomputes it instead of failing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_torch(path, expected_config)
    except CorruptFileError as err:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        cause = err.__cause__ or err
        warnings.warn(
            f"{path} was damaged ({type(cause).__name__}: {_first_line(cause)}): moved to "
            f"{aside}, computing it again",
            stacklevel=2,
        )
        return None
