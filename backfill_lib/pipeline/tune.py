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
candidates (the draws of budget k are the first k of any larger one).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..methods.registry import get_method, method_names
from ..storage import save_json
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
    """One candidate's options and its validation scores."""

    options: dict
    auc_mAP: float
    mAP_t0: float
    old_old_mAP: float

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
    search: dict[str, dict] = {}
    progress = tqdm(total=sum(map(len, lists.values())), desc="tune", unit="candidate")
    for method, option_sets in lists.items():
        scored = []
        for options in option_sets:
            config = with_options(base, method, options)
            experiment = Experiment(config, data_root, cache_dir, download)
            scored.append(Candidate(options, *validation_scores(experiment, method)))
            progress.update()
        search[method] = _summary(scored)
    progress.close()
    data = experiment.data
    record = {
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
        "compatible_losses": {
            m: search[m]["chosen_options"] for m in methods if m in base.compatible_losses
        },
        "transformations": {
            m: search[m]["chosen_options"] for m in methods if m in base.transformations
        },
        "search": search,
        "models": {"old": asdict(base.old), "new": asdict(base.new)},
    }
    save_json(record, out)
    return record


def _summary(scored: list[Candidate]) -> dict:
    """A method's search for the options file: every candidate's scores and the choice."""
    chosen = choose(scored)
    rest = sorted((c.auc_mAP for i, c in enumerate(scored) if i != chosen), reverse=True)
    return {
        "chosen": chosen,
        "chosen_options": scored[chosen].options,
        "compatible": scored[chosen].compatible,
        "lead_over_next_best": scored[chosen].auc_mAP - rest[0] if rest else None,
        "candidates": [
            {
                "options": c.options,
                "val_auc_mAP": c.auc_mAP,
                "val_mAP_t0": c.mAP_t0,
                "val_old_old_mAP": c.old_old_mAP,
                "compatible": c.compatible,
            }
            for c in scored
        ],
    }


def describe(record: dict) -> list[str]:
    """One line per method of an options file's record: the searched options it chose, its
    validation AUC-mAP, and whether it passed the criterion."""
    lines = []
    for method, search in record["search"].items():
        best = search["candidates"][search["chosen"]]
        searched = {k: best["options"][k] for k in get_method(method).search_space}
        passed = "" if search["compatible"] else "; no candidate passed the criterion"
        lines.append(
            f"{method:7s} {searched}: validation AUC-mAP {100 * best['val_auc_mAP']:.2f}, "
            f"mAP at t = 0 {100 * best['val_mAP_t0']:.2f} "
            f"(old/old {100 * best['val_old_old_mAP']:.2f}){passed}"
        )
    return lines
