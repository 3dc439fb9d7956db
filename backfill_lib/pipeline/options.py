"""Options files: the methods' options that ``backfill tune`` chose, and how a run takes them.

An options file (JSON, ``format`` :data:`OPTIONS_FORMAT`) holds, per compatible method, its
loss options (``compatible_losses``) and, per transformation method, the fields of its
:class:`~backfill_lib.core.transformation.TransformConfig` (``transformations``), with the
evidence behind them: the dataset and a fingerprint of its training split, the profile, the
rule, the budget and every candidate's validation scores (:mod:`.tune` writes it).
``backfill demo``, ``train``, ``reproduce`` and ``backfill-job`` take one with
``--options FILE`` (:func:`load_options`, then
:func:`~backfill_lib.pipeline.config.default_config`'s ``options``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..methods.registry import get_method
from ..storage import load_json

__all__ = ["OPTIONS_FORMAT", "TunedOptions", "load_options"]

OPTIONS_FORMAT = "backfill-options/1"
SHORT_RULE = "the best validation AUC-mAP among the compatible"
_FIX = "write it with `backfill tune`"


@dataclass(frozen=True)
class TunedOptions:
    """An options file, read and checked: where it is, what it was tuned on, and the chosen
    options (``compatible_losses``: ``{method: loss options}``, ``transformations``:
    ``{method: TransformConfig fields}``)."""

    path: Path
    dataset: str
    profile: str
    fingerprint: str
    compatible_losses: dict[str, dict[str, Any]]
    transformations: dict[str, dict[str, Any]]
    budget: int | None = None

    @property
    def methods(self) -> tuple[str, ...]:
        return (*self.compatible_losses, *self.transformations)

    def source(self) -> str:
        """What ``results.json`` records as the options' source."""
        how = f"; {self.budget} candidates per method, {SHORT_RULE}" if self.budget else ""
        return (
            f"tuned: {self.path} ({', '.join(self.methods)}; on {self.dataset}, "
            f"{self.profile} profile, training split {self.fingerprint[:12]}{how})"
        )


def load_options(path: str | Path) -> TunedOptions:
    """Read and check an options file: its format, and every method and option it names
    (a method the registry does not know, or an option it does not have, is named)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"options file {path} does not exist; {_FIX}")
    record = load_json(path, dict, fix=_FIX)
    if record.get("format") != OPTIONS_FORMAT:
        raise ValueError(
            f"{path} is not an options file (format {record.get('format')!r}, expected "
            f"{OPTIONS_FORMAT!r}); {_FIX}"
        )
    if record.get("pending"):
        raise ValueError(
            f"the search in {path} is unfinished ({', '.join(record['pending'])} pending); "
            f"run `backfill tune` again with --out {path} to finish it"
        )
    for key in ("dataset", "profile", "fingerprint"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"{path}: {key!r} is missing or not a string; {_FIX}")
    return TunedOptions(
        path=path,
        dataset=record["dataset"],
        profile=record["profile"],
        fingerprint=record["fingerprint"],
        compatible_losses=_checked(path, record, "compatible_losses", "compatible"),
        transformations=_checked(path, record, "transformations", "transformation"),
        budget=_budget(path, record),
    )


def _budget(path: Path, record: dict) -> int | None:
    """The file's candidates per method (``budget.candidates_per_method``), when it says."""
    budget = record.get("budget", {})
    value = budget.get("candidates_per_method") if isinstance(budget, dict) else budget
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{path}: budget.candidates_per_method is {value!r}, not an integer")
    return value


def _checked(path: Path, record: dict, key: str, family: str) -> dict[str, dict[str, Any]]:
    """``record[key]``: each method of ``family`` and each option it sets, checked."""
    chosen = record.get(key, {})
    if not isinstance(chosen, dict):
        raise ValueError(f"{path}: {key!r} must map methods to their options; {_FIX}")
    for method, options in chosen.items():
        entry = get_method(method)
        is_family = entry.family == "compatible" if family == "compatible" else entry.transformation
        if not is_family:
            raise ValueError(f"{path}: {method} under {key!r} is not a {family} method")
        if not isinstance(options, dict):
            raise ValueError(f"{path}: {key}.{method} must be an object of options")
        allowed = entry.tunable_options()
        for option, value in options.items():
            if option not in allowed:
                raise ValueError(
                    f"{path}: {method} has no option {option!r} (it has {', '.join(allowed)})"
                )
            if not _same_kind(value, allowed[option]):
                raise ValueError(
                    f"{path}: {method}'s {option} is {value!r}, where a value like "
                    f"{allowed[option]!r} is expected"
                )
    return {method: dict(options) for method, options in chosen.items()}


def _same_kind(value: Any, default: Any) -> bool:
    """A chosen value is of its default's kind: an integer for an integer, a number for a
    float, else the same type."""
    if isinstance(default, float) and not isinstance(value, bool):
        return isinstance(value, (int, float))
    return type(value) is type(default)
