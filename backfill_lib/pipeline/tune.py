"""``backfill tune``: every method's options chosen on the validation split, by one rule and
one budget for all.

The search runs in validation mode only (:class:`~backfill_lib.data.splits.ExperimentData`:
both models train on 80% of the training images, the other 20% are the query/gallery set),
so no choice ever reads a test image. For each method with a ``search_space`` (the
registry), the candidates are its current options (the fallback, first) and then draws
from the product of its search space, seeded and without repetition: ``budget`` candidates
per method, each one training of what the method trains (a compatible method: a new
backbone; a transformation method: psi). The old and new models are trained once and
shared. Every candidate is scored by its validation curve in the random order
(:func:`validation_scores`) and :func:`choose` applies :data:`RULE`. What was chosen, and
the evidence, is an options file (:mod:`.options`).

Every candidate's models and curves are cached by their configuration like any run's, so an
interrupted search resumes where it stopped and a larger budget reuses the smaller one's
candidates (the draws of budget k are the first k of any larger one). The options file is
the search's ledger too (:func:`tune`): a search resumes from it where the cache is gone.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..methods.registry import get_method, method_names
from ..storage import as_json, load_json, save_json
from .config import ExperimentConfig
from .experiment import Experiment
from .options import OPTIONS_FORMAT

__all__ = [
    "RULE",
    "Candidate",
    "candidates",
    "choose",
    "describe",
    "tunable_methods",
    "tune",
    "validation_scores",
    "with_options",
]

RULE = (
    "the highest validation AUC-mAP (random order) among the candidates whose validation "
    "mAP at t = 0 is above old/old's (the upgraded system retrieves better from the old "
    "gallery than the old model did: BCT's criterion, for a transformation method through "
    "psi); when no candidate passes, the highest AUC-mAP, marked not compatible; on equal "
    "scores the earlier candidate (the fallback is first)"
)


@dataclass(frozen=True)
class Candidate:
    """One candidate's options, its validation scores and the minutes its run took (with the
    shared old and new models when it was the first to need them; ``None`` when unrecorded)."""

    options: dict
    auc_mAP: float
    mAP_t0: float
    old_old_mAP: float
    minutes: float | None = None

    @property
    def compatible(self) -> bool:
        return self.mAP_t0 > self.old_old_mAP


def tunable_methods() -> tuple[str, ...]:
    """The methods ``backfill tune`` chooses options for: those with a search space."""
    return tuple(m for m in method_names() if get_method(m).search_space)


def candidates(method: str, start: dict, budget: int, seed: int = 0) -> list[dict]:
    """``budget`` option sets of ``method``: ``start`` (its current options), then seeded
    draws without repetition from the product of its search space (all of it when that is
    smaller). The draws depend on ``seed`` and the method's name only, and a larger budget
    extends a smaller one's list."""
    space = get_method(method).search_space
    grid = [
        {**start, **dict(zip(space, point, strict=True))}
        for point in itertools.product(*space.values())
    ]
    others = [options for options in grid if options != start]
    random.Random(f"{seed}:{method}").shuffle(others)
    return [start, *others[: budget - 1]]


def choose(scored: list[Candidate]) -> int:
    """The index of the candidate :data:`RULE` picks."""
    passing = [i for i, c in enumerate(scored) if c.compatible] or range(len(scored))
    return max(passing, key=lambda i: (scored[i].auc_mAP, -i))


def _current_options(config: ExperimentConfig, method: str) -> dict:
    if method in config.compatible_losses:
        return dict(config.compatible_losses[method])
    return asdict(config.transformations[method])


def with_options(config: ExperimentConfig, method: str, options: dict) -> ExperimentConfig:
    """``config`` evaluating ``method`` alone, with ``options`` as its options."""
    if method in config.compatible_losses:
        config = replace(config, compatible_losses={**config.compatible_losses, method: options})
    else:
        fitted = replace(config.transformations[method], **options)
        config = replace(config, transformations={**config.transformations, method: fitted})
    return replace(config, methods=(method,), orders=("random",))


def validation_scores(experiment: Experiment, method: str) -> tuple[float, float, float]:
    """``(AUC-mAP, mAP at t = 0, old/old mAP)`` of ``method`` on ``experiment``'s
    query/gallery set in the random order."""
    results = experiment.results("random")["methods"]
    mine = results[method]
    return mine["auc_mAP"], mine["mAP"][0], results["old/old"]["final_mAP"]


def tune(
    base: ExperimentConfig,
    out: str | Path,
    methods: tuple[str, ...] | None = None,
    budget: int = 8,
    seed: int = 0,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
    profile: str = "cpu",
) -> dict:
    """Choose the options of ``methods`` (default: :func:`tunable_methods`) on ``base``'s
    validation split, write the options file ``out`` and return its record.

    ``base`` gives the data, the models' training and the starting options (the fallback);
    it is run with ``validation=True`` whatever it says.

    The options file is also the search's ledger: it is rewritten after every candidate, and
    a search into an existing file (same data, models, rule and budget, else an error) keeps
    its methods and scored candidates and trains only what is missing. So a search resumes
    on a machine whose cache is empty, and runs in parts (``methods`` at a time) into one
    file. Methods whose candidates are not all scored yet are listed under ``pending``;
    :func:`~backfill_lib.pipeline.options.load_options` refuses such a file.
    """
    if budget < 1:
        raise ValueError(f"budget {budget}: give at least 1 candidate per method")
    methods = methods or tunable_methods()
    for method in methods:
        if not get_method(method).search_space:
            raise ValueError(
                f"{method} has no options to tune; choose from {', '.join(tunable_methods())}"
            )
    base = replace(base, validation=True)
    lists = {m: candidates(m, _current_options(base, m), budget, seed) for m in methods}
    out = Path(out)
    header = _header(base, Experiment(base, data_root, cache_dir, download), profile, budget, seed)
    search = _ledger(out, header)
    known = {m: _known(search.get(m), option_sets) for m, option_sets in lists.items()}
    for method, option_sets in lists.items():
        search[method] = _summary(known[method], len(option_sets))
    todo = sum(len(option_sets) for option_sets in lists.values())
    initial = sum(len(scored) for scored in known.values())
    progress = tqdm(total=todo, initial=initial, desc="tune", unit="candidate")
    for method, option_sets in lists.items():
        scored = known[method]
        for options in option_sets[len(scored) :]:
            config = with_options(base, method, options)
            start = time.perf_counter()
            scores = validation_scores(Experiment(config, data_root, cache_dir, download), method)
            minutes = (time.perf_counter() - start) / 60
            scored.append(Candidate(options, *scores, minutes=minutes))
            search[method] = _summary(scored, len(option_sets))
            save_json(_record(header, search, base), out)
            progress.update()
    progress.close()
    record = _record(header, search, base)
    save_json(record, out)
    return record


def _header(
    base: ExperimentConfig, experiment: Experiment, profile: str, budget: int, seed: int
) -> dict:
    """What an options file says about the search itself: the data, the rule, the budget and
    the models (their training, precision included). Two searches with the same header can
    share a ledger."""
    data = experiment.data
    header = {
        "format": OPTIONS_FORMAT,
        "dataset": data.dataset.name,
        "profile": profile,
        "fingerprint": data.dataset.fingerprint(("train",)),
        "setting": base.setting,
        "split_seed": base.split_seed,
        "validation": {
            "query_gallery_images": len(data.test_labels),
            "classes": data.dataset.num_classes,
            "old_classes": data.split.old_classes,
        },
        "rule": RULE,
        "budget": {
            "candidates_per_method": budget,
            "seed": seed,
            "unit": "one training of what the method trains: a new backbone "
            f"({base.new.epochs} epochs) for a compatible method, psi for a transformation "
            "method; old and new trained once, shared",
        },
        "models": {"old": asdict(base.old), "new": asdict(base.new)},
    }
    return as_json(header)


def _ledger(out: Path, header: dict) -> dict[str, dict]:
    """The searches an earlier run recorded in ``out`` (none when there is no file), which
    must have been made on ``header``'s terms."""
    if not out.exists():
        return {}
    fix = f"give another --out, or remove {out} to start the search over"
    record = load_json(out, dict, fix=fix)
    for key, value in header.items():
        if record.get(key) != value:
            raise ValueError(
                f"{out} holds a search made on other terms ({key!r} is {record.get(key)!r} "
                f"there, {value!r} here); {fix}"
            )
    return dict(record.get("search", {}))


def _known(search: dict | None, option_sets: list[dict]) -> list[Candidate]:
    """The leading candidates of ``option_sets`` that ``search`` (a method's entry in a
    ledger) has scored already."""
    recorded = {
        json.dumps(c["options"], sort_keys=True): c for c in (search or {}).get("candidates", [])
    }
    known = []
    for options in option_sets:
        entry = recorded.get(json.dumps(options, sort_keys=True))
        if entry is None:
            break
        scores = (entry["val_auc_mAP"], entry["val_mAP_t0"], entry["val_old_old_mAP"])
        known.append(Candidate(options, *scores, minutes=entry.get("minutes")))
    return known


def _record(header: dict, search: dict[str, dict], base: ExperimentConfig) -> dict:
    """The options file: ``header``, the chosen options of every finished method, the
    methods still pending and every candidate's scores."""
    finished = {m: s["chosen_options"] for m, s in search.items() if "chosen" in s}
    pending = [m for m, s in search.items() if "chosen" not in s]
    return {
        **header,
        "compatible_losses": {m: o for m, o in finished.items() if m in base.compatible_losses},
        "transformations": {m: o for m, o in finished.items() if m in base.transformations},
        **({"pending": pending} if pending else {}),
        "search": search,
    }


def _summary(scored: list[Candidate], size: int) -> dict:
    """A method's search for the options file: every candidate's scores and, once all
    ``size`` of them are scored, the choice."""
    record = {
        "candidates": [
            {
                "options": c.options,
                "val_auc_mAP": c.auc_mAP,
                "val_mAP_t0": c.mAP_t0,
                "val_old_old_mAP": c.old_old_mAP,
                "compatible": c.compatible,
                "minutes": c.minutes,
            }
            for c in scored
        ]
    }
    if len(scored) < size:
        return record
    chosen = choose(scored)
    rest = sorted((c.auc_mAP for i, c in enumerate(scored) if i != chosen), reverse=True)
    return {
        "chosen": chosen,
        "chosen_options": scored[chosen].options,
        "compatible": scored[chosen].compatible,
        "lead_over_next_best": scored[chosen].auc_mAP - rest[0] if rest else None,
        **record,
    }


def describe(record: dict) -> list[str]:
    """One line per method of an options file's record: the searched options it chose, its
    validation AUC-mAP, and whether it passed the criterion (or, for a method still pending,
    how many candidates are scored)."""
    lines = []
    for method, search in record["search"].items():
        if "chosen" not in search:
            lines.append(f"{method:7s} pending: {len(search['candidates'])} candidates scored")
            continue
        best = search["candidates"][search["chosen"]]
        searched = {k: best["options"][k] for k in get_method(method).search_space}
        passed = "" if search["compatible"] else "; no candidate passed the criterion"
        lines.append(
            f"{method:7s} {searched}: validation AUC-mAP {100 * best['val_auc_mAP']:.2f}, "
            f"mAP at t = 0 {100 * best['val_mAP_t0']:.2f} "
            f"(old/old {100 * best['val_old_old_mAP']:.2f}){passed}"
        )
    return lines
