"""How close simulated embeddings come to real ones: drm, rt and rt+mc curves side by side.

Reads a real experiment's cached old and new models (default: CIFAR-10, extended-class,
the CPU profile, seed 0, as in figures/cifar10), fits the three noise levels of
:class:`backfill_lib.simulate.Simulation` to their test embeddings (new/new mAP; old/old
mAP of the seen and of the unseen classes), then draws a simulated training set and gallery
of the real sizes, trains psi for ``rt`` and ``rt+mc`` on the simulated training set with
the experiment's own settings, and evaluates ``drm``, ``rt`` and ``rt+mc`` on both
(random order, 21 fractions, full-ranking mAP).

    python bench/simulation.py --dataset imagefolder:../shared/datasets/cifar10 \\
        --cache ~/.cache/backfill_lib-cifar-cold

Last line: ``ratio <largest |simulated - real| AUC-mAP difference, in points>``.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from _common import experiment_parser

from backfill_lib import (
    Experiment,
    Simulation,
    auc,
    calibrate,
    default_config,
    distance_rank_merge,
    evaluate_curve,
    fit_transformation,
    random_order,
    simulation_targets,
    transformed_query_merge,
)
from backfill_lib.core.merge import TwoPartEmbeddings

METHODS = ("drm", "rt", "rt+mc")


def simulated_parts(items, train, config) -> dict[str, TwoPartEmbeddings]:
    """drm, rt and rt+mc over simulated ``items``, psi trained on ``train``."""
    parts = {"drm": distance_rank_merge(items.old, items.old, items.new, items.new)}
    for method in ("rt", "rt+mc"):
        fitted = fit_transformation(
            train.new, train.old, train.labels, config.transformations[method]
        )
        head = fitted.new_head(items.new)
        parts[method] = transformed_query_merge(fitted.transform(items.new), items.old, head, head)
    return parts


def main() -> None:
    parser = experiment_parser(__doc__.split("\n")[0], "imagefolder:../shared/datasets/cifar10")
    parser.add_argument("--latent-dim", type=int, default=32)
    args = parser.parse_args()
    config = default_config(
        args.dataset,
        "cpu",
        methods=METHODS,
        orders=("random",),
        data_root=args.data_root,
        cache_dir=args.cache,
    )
    experiment = Experiment(config, args.data_root, args.cache)
    old, new = experiment.embeddings("old"), experiment.embeddings("new")
    labels = experiment.data.test_labels
    old_classes = experiment.data.split.old_classes
    order = experiment.order("random")
    real = {m: evaluate_curve(experiment.parts(m), labels, order) for m in METHODS}
    targets = simulation_targets(old, new, labels, old_classes)

    start = time.perf_counter()
    simulation = Simulation(
        classes=int(labels.max()) + 1,
        old_classes=old_classes,
        latent_dim=args.latent_dim,
        old_dim=old.shape[1],
        new_dim=new.shape[1],
    )
    simulation = calibrate(simulation, targets, len(labels))
    items = simulation.sample(len(labels), seed=1)
    train = simulation.sample(len(experiment.data.training_data("new")[1]), seed=2)
    reached = simulation_targets(*items, old_classes)
    simulated = {
        m: evaluate_curve(parts, items.labels, random_order(len(items.labels), seed=0))
        for m, parts in simulated_parts(items, train, config).items()
    }
    print(f"real: {args.dataset}, extended-class, cpu profile, seed 0, {len(labels):,} test items")
    print(
        f"calibrated in {time.perf_counter() - start:.0f} s: "
        + ", ".join(f"{k} {v:.3f}" for k, v in asdict(simulation).items() if "noise" in k)
    )
    print("| target (mAP %) | real | simulated |\n|---|---|---|")
    for name in targets:
        print(f"| {name} | {100 * targets[name]:.1f} | {100 * reached[name]:.1f} |")
    print("\n| method | real AUC-mAP | simulated | real final | simulated |\n|---|---|---|---|---|")
    worst = 0.0
    for m in METHODS:
        r, s = 100 * auc(real[m].mAP), 100 * auc(simulated[m].mAP)
        worst = max(worst, abs(r - s))
        print(
            f"| {m} | {r:.1f} | {s:.1f} | {100 * real[m].mAP[-1]:.1f} | "
            f"{100 * simulated[m].mAP[-1]:.1f} |"
        )
    print(f"ratio {worst:.2f}")


if __name__ == "__main__":
    main()
