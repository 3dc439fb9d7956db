"""What ``results.json`` says about one backfill order, from the curves of its methods:
every metric of METHOD.md section 5 per method, and the paired bootstrap intervals of
section 5b, in one schema (:func:`results_record`). Shared by
:class:`~.experiment.Experiment` (models it trained), :func:`~.upgrade.evaluate_upgrade`
(embeddings a user brings) and :class:`~.pack_experiment.PackExperiment` (a pack's)."""

from __future__ import annotations

import numpy as np

from ..core.merge import TwoPartEmbeddings
from ..core.metrics import Curve, auc, negative_flip_rate, relative_gain
from ..core.statistics import (
    RESAMPLES,
    Bootstrap,
    paired_bootstrap,
    per_query_mean,
    trapezoid_auc,
)
from ..methods.registry import get_method

__all__ = [
    "INTERVAL_METRICS",
    "add_intervals",
    "bootstrap_curves",
    "method_costs",
    "results_record",
    "summarise_methods",
]

INTERVAL_METRICS = ("auc_mAP", "auc_top1", "final_mAP")

Evaluated = dict[str, tuple[TwoPartEmbeddings, Curve]]  # method -> (its parts, its curve)


def results_record(
    evaluated: Evaluated,
    order: str,
    *,
    dataset: str,
    setting: str,
    options: str,
    gallery_size: int,
    methods: dict[str, dict],
    models: dict,
    config: dict,
    **described: object,
) -> dict:
    """The ``results.json`` dictionary of one order, its keys in the schema's order
    (docs/usage.md): what was run, on what, ``methods`` (:func:`summarise_methods`, with
    whatever the caller adds) and the models and configuration. ``described``: further
    facts of the run, after ``gallery_size``."""
    return {
        "dataset": dataset,
        "setting": setting,
        "options": options,
        "order": order,
        "fractions": evaluated["old/old"][1].fractions.tolist(),
        "gallery_size": gallery_size,
        **described,
        "methods": methods,
        "models": models,
        "config": config,
    }


def summarise_methods(evaluated: Evaluated) -> dict[str, dict]:
    """``results.json``'s ``methods``: each method's curve and its summaries (AUCs, final
    mAP, relative gain and negative flip rate against ``old/old``, backbone passes per query,
    and transformation passes per stored gallery item before serving: FCT's h, 1). The
    references ``old/old`` and ``new/new`` must be among ``evaluated``."""
    curves = {method: curve for method, (_, curve) in evaluated.items()}
    old_old = float(curves["old/old"].mAP[0])
    new_new = float(curves["new/new"].mAP[0])
    reference_top1 = curves["old/old"].top1_hits[0]
    return {
        m: {
            "mAP": c.mAP.tolist(),
            "top1": c.top1.tolist(),
            "top5": c.cmc[5].tolist(),
            "auc_mAP": auc(c.mAP),
            "auc_top1": auc(c.top1),
            "final_mAP": float(c.mAP[-1]),
            "relative_gain": relative_gain(auc(c.mAP), old_old, new_new),
            "negative_flip_rate": negative_flip_rate(reference_top1, c.top1_hits),
            "query_forward_passes": evaluated[m][0].forward_passes,
            "gallery_transform_passes": int(get_method(m).family == "forward"),
            "auc_mAP_trapezoid": trapezoid_auc(c.mAP),
            "auc_top1_trapezoid": trapezoid_auc(c.top1),
        }
        for m, c in curves.items()
    }


def method_costs(
    evaluated: Evaluated,
    backbone_flops: dict[str, int],
    transformation_flops: dict[str, int],
) -> dict[str, dict[str, float]]:
    """What each method spends, in passes of the new model's backbone (from the FLOPs of
    one pass of each trained model, ``backbone_flops``, and of each fitted map on one
    vector, ``transformation_flops``): ``query_cost`` per query served (DRM: the old and
    the new model; RT: the new model and psi), ``backfill_cost`` per gallery item
    backfilled (old/old backfills nothing) and ``upfront_cost`` per stored gallery item
    before serving starts (FCT's h over the whole gallery)."""
    unit = backbone_flops["new"]
    costs = {}
    for m, (parts, _) in evaluated.items():
        entry = get_method(m)
        side = "old" if m == "old/old" else m if entry.family == "compatible" else entry.mapped_from
        both = parts.forward_passes == 2  # DRM: the query through the old model too
        query = backbone_flops[side] + (backbone_flops["old"] if both else 0)
        mapped = transformation_flops.get(m, 0)
        costs[m] = {
            "query_cost": (query + (mapped if entry.family == "online" else 0)) / unit,
            "backfill_cost": 0.0 if m == "old/old" else backbone_flops[side] / unit,
            "upfront_cost": (mapped if entry.family == "forward" else 0) / unit,
        }
    return costs


def bootstrap_curves(evaluated: Evaluated, seed: int) -> Bootstrap:
    """Paired resamples of the queries (seeded: every order of one experiment draws the
    same ones) of each method's per-query AUC-mAP, AUC-top1 and final AP, keyed
    ``"<method>|<metric>"``."""
    per_query = {}
    for method, (_, curve) in evaluated.items():
        counted = ~np.isnan(curve.query_ap[0])  # (Q,) queries with a relevant item
        top1 = np.where(counted, curve.top1_hits, np.nan)  # (S + 1, Q)
        per_query[f"{method}|auc_mAP"] = per_query_mean(curve.query_ap)
        per_query[f"{method}|auc_top1"] = per_query_mean(top1)
        per_query[f"{method}|final_mAP"] = curve.query_ap[-1]
    return paired_bootstrap(per_query, seed=seed)


def add_intervals(
    results: dict, bootstrap: Bootstrap, against: tuple[str, Bootstrap] | None = None
) -> None:
    """Put into ``results`` (one order's ``results.json``) each method's intervals beside
    its numbers and the comparisons: ``intervals`` (how they were drawn), ``differences``
    (``"A - B"`` for every method A listed after B) and, with ``against`` (another order
    and its bootstrap), ``vs_<order>`` (each method in this order minus the same method in
    that one)."""
    methods = list(results["methods"])
    for m in methods:
        results["methods"][m] |= {f"{k}_interval": v for k, v in _interval_of(bootstrap, m).items()}
    results["intervals"] = {
        "method": "paired percentile bootstrap over queries",
        "resamples": RESAMPLES,
        "level": bootstrap.level,
    }
    results["differences"] = {
        f"{a} - {b}": _interval_of(bootstrap, a, b)
        for i, a in enumerate(methods)
        for b in methods[:i]
    }
    if against is not None and against[0] != results["order"]:
        other_order, other = against
        results[f"vs_{other_order}"] = {m: _interval_of(bootstrap, m, m, other) for m in methods}


def _interval_of(
    bootstrap: Bootstrap, a: str, b: str | None = None, b_from: Bootstrap | None = None
) -> dict[str, list[float]]:
    """``{metric: [low, high]}`` of method ``a``, or of ``a - b`` (``b`` from ``b_from``)."""
    return {
        metric: list(bootstrap.interval(f"{a}|{metric}", b and f"{b}|{metric}", b_from))
        for metric in INTERVAL_METRICS
    }
