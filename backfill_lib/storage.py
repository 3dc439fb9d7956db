"""Where things are kept: the cache directory, configuration keys and atomic writes.

Everything the library trains or computes is stored under a key derived from the full
configuration that produced it (``config_key``), so a re-run reuses it and a changed
configuration never silently reuses a stale file. Every write goes to a temporary file in
the same directory and is then renamed over the target (``os.replace`` is atomic on POSIX),
so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically.

    If ``write`` raises (or the process dies), ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes it private (0600); give it open()'s default
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(obj: Any, path: str | Path) -> Path:
    """Pretty JSON through :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


class ConfigMismatchError(ValueError):
    """A stored file was produced by a different configuration than the one asked for."""


def load_torch(path: str | Path, expected_config: Mapping[str, Any] | None = None) -> Any:
    """Load a file written by :func:`save_torch` with ``weights_only=True``.

    When ``expected_config`` is given, the file must be a dict whose ``"config"`` equals
    it; otherwise a :class:`ConfigMismatchError` names the differing fields.
    """
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if expected_config is not None:
        stored = obj.get("config") if isinstance(obj, dict) else None
        expected = json.loads(json.dumps(expected_config, default=str))
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
