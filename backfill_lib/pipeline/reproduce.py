"""``backfill reproduce``: every method in every setting, figures, tables and the claims.

Settings (METHOD.md section 2):

- ``extended-class``: the default; same architecture for both models; every method.
- ``heterogeneous``: extended-class with an old architecture smaller than the new one
  (airbench-half -> airbench on the CPU profile, ResNet-18 -> ResNet-50 on the GPU profile,
  SmallCNN -> ResNet-20 on digits).
- ``extended-data``: the old model sees a random half of the training images.
- ``open-class``: both models train without the last 20% of the classes, which alone are
  tested.

On the CPU profile for 32x32 datasets the three further settings run the methods that need no
compatible training (``old/old new/new new/old drm rt rt+mc``); digits and the GPU profile
run every method everywhere. Each setting writes ``<out>/<setting>/`` (the demo's files, from
the first seed); its section of ``<out>/results.md`` (the mean and spread over seeds and the
claims on each seed, with the command that made it) is kept in ``<out>/sections.json``, its
spread in ``<out>/summary.json`` and its claims' verdicts (holds, fails or tie: METHOD.md
section 5b) in ``<out>/verdicts.json``, so a setting rerun with more seeds replaces its own
section and keeps the others'. Each seed's reports are kept in ``<out>/<setting>/seeds/``
with the configuration and data they were made on: a rerun reads them instead of training
again, even on an empty cache, so a long reproduction spans sessions seed by seed. Seed
``s`` seeds the models (2s, 2s + 1), the data split and the backfill order.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

from ..core.statistics import combine, verdict
from ..methods.registry import get_method, method_names
from ..reporting.outputs import write_outputs
from ..reporting.tables import markdown_table, models_markdown
from ..storage import CorruptFileError, as_json, atomic_write, load_json, save_json
from .config import ExperimentConfig, dataset_classes, default_config
from .experiment import Experiment, Report
from .options import TunedOptions

__all__ = [
    "HETEROGENEOUS",
    "SETTING_NAMES",
    "check_claims",
    "Claim",
    "default_out",
    "reproduce",
    "setting_config",
    "spread_over_seeds",
]

SETTING_NAMES = ("extended-class", "heterogeneous", "extended-data", "open-class")
# The profile's architecture -> (old, new) architectures of the heterogeneous setting.
HETEROGENEOUS = {
    "cnn-small": ("cnn-small", "resnet20"),
    "airbench": ("airbench-half", "airbench"),
    "resnet18": ("resnet18", "resnet50"),
}


def setting_config(
    dataset: str,
    profile: str,
    name: str,
    seed: int = 0,
    epochs: int | None = None,
    options: TunedOptions | None = None,
    classes: int | None = None,
) -> ExperimentConfig:
    """The configuration of one named setting and seed ``s``: old model seed 2s, new 2s+1,
    the data split's seed (extended-data's half, the validation holdout) and the order's s;
    the methods' options from ``options`` (an options file) or the fallback (which follows
    the dataset's number of ``classes``: see
    :func:`~backfill_lib.pipeline.config.default_config`)."""
    if name not in SETTING_NAMES:
        raise ValueError(f"unknown setting {name!r}; choose from {', '.join(SETTING_NAMES)}")
    base = default_config(dataset, profile, options, classes=classes)
    cheap = dataset != "digits" and profile == "cpu" and name != "extended-class"
    old = replace(base.old, seed=2 * seed, epochs=epochs or base.old.epochs)
    new = replace(base.new, seed=2 * seed + 1, epochs=epochs or base.new.epochs)
    if name == "heterogeneous":
        old_arch, new_arch = HETEROGENEOUS[base.new.arch]
        old, new = replace(old, arch=old_arch), replace(new, arch=new_arch)
    return replace(
        base,
        setting="extended-class" if name == "heterogeneous" else name,
        old=old,
        new=new,
        methods=_two_model_methods() if cheap else method_names(),
        order_seed=seed,
        split_seed=seed,
    )


def _two_model_methods() -> tuple[str, ...]:
    """The methods that need the old and new models alone (no compatible model trained):
    what the CPU profile runs on images in the settings other than extended-class."""
    return tuple(m for m in method_names() if set(get_method(m).models) <= {"old", "new"})


def default_out(dataset: str) -> Path:
    """``figures/<name>``: ``figures/cifar10`` for ``cifar10`` or ``imagefolder:.../cifar10``,
    ``figures/tinyimagenet-dev100`` for ``tinyimagenet:.../tinyimagenet-dev100.tar``."""
    return Path("figures") / Path(dataset.split(":", 1)[-1]).name.removesuffix(".tar")


@dataclass
class Claim:
    """One claim of the issue, judged on one setting's results: ``verdict`` is ``holds``,
    ``fails`` or ``tie`` (METHOD.md section 5b)."""

    text: str
    verdict: str
    evidence: str

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"


def _interval(values: list[float]) -> tuple[float, float]:
    """A ``[low, high]`` read from ``results.json``."""
    low, high = values
    return low, high


def _difference(results: dict, a: str, b: str, metric: str = "auc_mAP") -> tuple[float, float]:
    """The interval of ``a - b`` in one order's results (``differences`` lists each pair
    once, the later method first)."""
    differences = results["differences"]
    if f"{a} - {b}" in differences:
        return _interval(differences[f"{a} - {b}"][metric])
    low, high = _interval(differences[f"{b} - {a}"][metric])
    return -high, -low


def _points(interval: tuple[float, float]) -> str:
    """An interval of a difference in mAP points: ``[+0.3, +1.2]``."""
    return f"[{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"


def check_claims(results: dict[str, dict]) -> list[Claim]:
    """Claims (a)-(e) on ``{order: results}`` of one setting (random and uncertainty), each
    judged by the paired bootstrap interval of the difference behind it
    (:func:`~backfill_lib.core.statistics.verdict`). A claim of several parts (both orders,
    every compatible method) holds when every part holds, fails when every part fails, and
    is a tie otherwise; an exact equality it states (no regret at t = 1) must hold too."""
    rnd = results["random"]["methods"]
    old_old, new_new = rnd["old/old"]["mAP"][0], rnd["new/new"]["mAP"][0]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    claims = []
    drm = rnd["drm"]["mAP"]
    rises = _difference(results["random"], "drm", "old/old")
    claims.append(
        Claim(
            "(a) drm rises from old/old to new/new",
            verdict(rises) if drm[0] == old_old and drm[-1] == new_new else "fails",
            f"drm mAP {pct(drm[0])} -> {pct(drm[-1])} (old/old {pct(old_old)}, new/new "
            f"{pct(new_new)}), AUC {pct(rnd['drm']['auc_mAP'])}, above old/old by "
            f"{_points(rises)}",
        )
    )
    for label, better, worse in (
        ("(b) rt beats drm in AUC", "rt", "drm"),
        ("(c) rt+mc beats rt", "rt+mc", "rt"),
    ):
        intervals = {o: _difference(results[o], better, worse) for o in results}
        parts = [
            f"{o}: {pct(results[o]['methods'][better]['auc_mAP'])} vs "
            f"{pct(results[o]['methods'][worse]['auc_mAP'])}, difference {_points(iv)}"
            for o, iv in intervals.items()
        ]
        claims.append(
            Claim(
                label,
                combine([verdict(iv) for iv in intervals.values()]),
                "AUC-mAP " + "; ".join(parts),
            )
        )
    compatible = [m for m in method_names("compatible") if m in rnd]
    below = {m: _difference(results["random"], "new/new", m, "final_mAP") for m in compatible}
    exact = rnd["rt+mc"]["final_mAP"] == new_new
    claims.append(
        Claim(
            "(d) rt+mc ends at new/new; the compatible methods end below it"
            if compatible
            else "(d) rt+mc ends at new/new (no compatible method in this setting)",
            "fails" if not exact else combine([verdict(iv) for iv in below.values()] or ["holds"]),
            f"rt+mc final {pct(rnd['rt+mc']['final_mAP'])} = new/new {pct(new_new)}; "
            + (
                ", ".join(
                    f"{m} {pct(rnd[m]['final_mAP'])} (new/new above by {_points(iv)})"
                    for m, iv in below.items()
                )
                or "no compatible method run"
            ),
        )
    )
    if "uncertainty" in results:
        unc = results["uncertainty"]
        online = ("drm", "rt", "rt+mc")
        gains = {m: _interval(unc["vs_random"][m]["auc_mAP"]) for m in online}
        claims.append(
            Claim(
                "(e) the uncertainty order beats the random order",
                combine([verdict(iv) for iv in gains.values()]),
                "AUC-mAP uncertainty vs random: "
                + ", ".join(
                    f"{m} {pct(unc['methods'][m]['auc_mAP'])} vs {pct(rnd[m]['auc_mAP'])} "
                    f"{_points(gains[m])}"
                    for m in online
                ),
            )
        )
    return claims


def reproduce(
    dataset: str,
    out: Path,
    profile: str = "cpu",
    settings: tuple[str, ...] = SETTING_NAMES,
    seeds: tuple[int, ...] = (0,),
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = False,
    epochs: int | None = None,
    options: TunedOptions | None = None,
) -> Path:
    """Run the settings over the seeds, write every output, return ``out/results.md``.
    The methods' options come from ``options`` (an options file), else the fallback.

    ``results.md``, ``summary.json`` and ``verdicts.json`` (each claim's verdict per setting,
    overall and per seed) are rewritten after every finished setting, listing
    the settings still to run, so an interrupted run leaves every finished result readable
    (and the cache, and each finished seed's file, let a rerun of the same command pick up
    where it stopped). Settings run earlier into ``out`` and not named in ``settings`` keep
    their sections.
    """
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise ValueError(
            f"seeds {' '.join(map(str, seeds)) or '(none)'}: give one or more distinct "
            "non-negative seeds"
        )
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs {epochs}: give at least 1 (or leave it out for the profile's)")
    out = Path(out)
    command = f"backfill reproduce --dataset {dataset} --profile {profile}"
    if epochs:
        command += f" --epochs {epochs}"
    if options:
        command += f" --options {options.path}"
    classes = dataset_classes(dataset, profile, data_root, cache_dir, download)
    summary = _load_json(out / "summary.json", dict)
    sections = _load_json(out / "sections.json", str)
    verdicts = _load_json(out / "verdicts.json", list)
    for done, name in enumerate(settings, 1):
        per_seed, minutes = [], 0.0
        for seed in seeds:
            config = setting_config(dataset, profile, name, seed, epochs, options, classes)
            experiment = Experiment(config, data_root, cache_dir, download)
            report, seed_minutes = _seed_run(experiment, out / name / "seeds" / f"{seed}.json")
            if seed == seeds[0]:
                write_outputs(report.results, report.compatibility, out / name)
            per_seed.append({results["order"]: results for results in report.results})
            minutes += seed_minutes
        summary[name] = spread_over_seeds(per_seed)
        made_by = f"{command} --settings {name} --seeds {' '.join(map(str, seeds))}"
        sections[name] = _section(name, config, per_seed, summary[name], seeds, made_by, minutes)
        verdicts[name] = [
            {key: claim[key] for key in ("text", "verdict", "seeds")}
            for claim in claims_over_seeds(per_seed, seeds)
        ]
        summary, sections = _in_setting_order(summary), _in_setting_order(sections)
        verdicts = _in_setting_order(verdicts)
        save_json(summary, out / "summary.json")
        save_json(sections, out / "sections.json")
        save_json(verdicts, out / "verdicts.json")
        pending = settings[done:]
        note = f"**Still to run:** {', '.join(pending)} (rerun the command).\n\n" if pending else ""
        text = (
            f"# Reproduction on {dataset}\n\n"
            "Each setting's section names the command that made it; rerunning a setting "
            "replaces its section and keeps the others.\n\n" + note + "\n".join(sections.values())
        )
        path = atomic_write(out / "results.md", partial(Path.write_text, data=text))
    return path


def _seed_run(experiment: Experiment, path: Path) -> tuple[Report, float]:
    """One seed's report and the minutes it took to make: read from ``path`` when an earlier
    run wrote it for the same configuration and data, so a rerun on an empty cache (another
    session's machine) does not train that seed again; else run, and written to ``path``."""
    config = as_json(asdict(experiment.config))
    fingerprint = experiment.data.dataset.fingerprint()
    if path.exists():
        record = load_json(path, dict, fix=f"delete {path} to run the seed again")
        if record.get("config") == config and record.get("fingerprint") == fingerprint:
            return Report(record["results"], record["compatibility"]), record["minutes"]
    start = time.perf_counter()
    report = experiment.run()
    minutes = (time.perf_counter() - start) / 60
    save_json(
        {
            "config": config,
            "fingerprint": fingerprint,
            "minutes": minutes,
            "results": report.results,
            "compatibility": report.compatibility,
        },
        path,
    )
    return report, minutes


def _in_setting_order(by_setting: dict) -> dict:
    return {name: by_setting[name] for name in SETTING_NAMES if name in by_setting}


def _load_json(path: Path, kind: type) -> dict:
    """A JSON object written by an earlier run into the output folder, whose values are all
    ``kind`` (``{}`` when there is none); a damaged one is named before any work."""
    if not path.exists():
        return {}
    fix = "delete it, and rerun every setting it held"
    value = load_json(path, dict, fix)
    wrong = [key for key, item in value.items() if not isinstance(item, kind)]
    if wrong:
        raise CorruptFileError(f"{path}: the entry {wrong[0]!r} is not a {kind.__name__}; {fix}")
    return value


def spread_over_seeds(per_seed: list[dict]) -> dict:
    """Mean and standard deviation over seeds of AUC-mAP, relative gain, final mAP and the mAP
    at t = 0 (``mAP_t0``: M(new, old) for a compatible method), per order and method; for
    ``mAP_t0`` also ``above_old_old``, on how many seeds it beat that seed's old/old."""
    out: dict[str, dict] = {}
    for order in per_seed[0]:
        for method in per_seed[0][order]["methods"]:
            for key in ("auc_mAP", "relative_gain", "final_mAP", "mAP_t0"):
                values = [_metric(r[order]["methods"][method], key) for r in per_seed]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                out.setdefault(order, {}).setdefault(method, {})[key] = {
                    "mean": statistics.fmean(values),
                    "sd": sd,
                }
            out[order][method]["mAP_t0"]["above_old_old"] = sum(
                _metric(r[order]["methods"][method], "mAP_t0")
                > _metric(r[order]["methods"]["old/old"], "mAP_t0")
                for r in per_seed
            )
    return out


def _metric(method_results: dict, key: str) -> float:
    return method_results["mAP"][0] if key == "mAP_t0" else method_results[key]


def _section(
    name: str,
    config: ExperimentConfig,
    per_seed: list[dict[str, dict]],
    spread: dict[str, dict],
    seeds: tuple[int, ...],
    made_by: str,
    minutes: float,
) -> str:
    first = per_seed[0]
    lines = [
        f"## {name}",
        "",
        f"Made by `{made_by}`. Old {config.old.arch} ({config.old.epochs} epochs), new "
        f"{config.new.arch}, {config.new.embed_dim}-d; seeds {list(seeds)}; {minutes:.1f} min "
        f"(the seeds' runs, each timed when it ran). Figures: [{name}/]({name}/results.md). "
        f"Options: {config.options}.",
        "",
    ]
    for order, res in first.items():
        lines += [
            f"### {order} order (seed {seeds[0]})",
            "",
            f"![curves]({name}/curves-{order}.png)",
            "",
            markdown_table(res),
            "",
        ]
        if len(seeds) > 1:
            lines += [
                "Mean ± sd over seeds (relative gain %): "
                + ", ".join(
                    f"{m} {v['relative_gain']['mean']:.1f} ± {v['relative_gain']['sd']:.1f}"
                    for m, v in spread[order].items()
                    if m not in ("old/old", "new/new")
                ),
                "",
            ]
    lines += [f"Models (seed {seeds[0]}):", "", models_markdown(next(iter(first.values()))), ""]
    t0 = spread[next(iter(spread))]  # the mAP at t = 0 does not depend on the order
    compatible = [m for m in t0 if m in method_names("compatible")]
    if len(seeds) > 1 and compatible:
        old_old = t0["old/old"]["mAP_t0"]
        lines += [
            f"Compatibility over the {len(seeds)} seeds, M(new, old) % against old/old "
            f"{100 * old_old['mean']:.1f} ± {100 * old_old['sd']:.1f}: "
            + ", ".join(
                f"{m} {100 * t0[m]['mAP_t0']['mean']:.1f} ± {100 * t0[m]['mAP_t0']['sd']:.1f} "
                f"(above old/old on {t0[m]['mAP_t0']['above_old_old']} of {len(seeds)})"
                for m in compatible
            )
            + ".",
            "",
        ]
    lines += [
        "### Claims",
        "",
        "Each judged by the paired bootstrap interval (95%, over queries) of the difference "
        "behind it, in mAP points: **holds** when it lies above 0 on every seed, **fails** "
        "when below on every seed, **tie** otherwise (METHOD.md section 5b).",
        "",
    ]
    for claim in claims_over_seeds(per_seed, seeds):
        lines.append(f"- {_verdict_words(claim, seeds)}: {claim['text']}. {claim['evidence']}.")
    return "\n".join(lines) + "\n"


def claims_over_seeds(per_seed: list[dict[str, dict]], seeds: tuple[int, ...]) -> list[dict]:
    """Each claim of :func:`check_claims` over the seeds: ``{"text", "verdict", "seeds":
    {seed: verdict}, "evidence"}``, the verdict combined as METHOD.md section 5b says (holds
    on every seed, fails on every seed, or a tie)."""
    over_seeds = []
    for verdicts in zip(*(check_claims(results) for results in per_seed), strict=True):
        evidence = "; ".join(
            (f"seed {s}: " if len(seeds) > 1 else "") + claim.evidence
            for s, claim in zip(seeds, verdicts, strict=True)
        )
        over_seeds.append(
            {
                "text": verdicts[0].text,
                "verdict": combine([claim.verdict for claim in verdicts]),
                "seeds": {str(s): c.verdict for s, c in zip(seeds, verdicts, strict=True)},
                "evidence": evidence,
            }
        )
    return over_seeds


def _verdict_words(claim: dict, seeds: tuple[int, ...]) -> str:
    """``**holds**``, ``**holds** on all 3 seeds``, ``**tie** (seed 0 holds, seed 1 tie)``."""
    words = f"**{claim['verdict']}**"
    if len(seeds) == 1:
        return words
    if claim["verdict"] != "tie":
        return f"{words} on all {len(seeds)} seeds"
    return f"{words} ({', '.join(f'seed {s} {v}' for s, v in claim['seeds'].items())})"
