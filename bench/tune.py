"""Explore one knob at a time on a validation split (never on the reported test split).

``backfill tune`` chooses every method's options by one rule and budget; this script is the
hand tool behind the grids docs/choices.md records (its commands), built on the same
library call (:func:`backfill_lib.pipeline.tune.with_options`). It
trains on 80% of the training images, evaluates on the other 20% (``validation=True``),
and prints, for each candidate, the validation AUC-mAP of the online-backfilling curve
(random order) and, for the compatible methods, the cross-model and own mAP. The chosen
values are the defaults in ``backfill_lib/pipeline/config.py`` and ``backfill_lib/methods/``;
docs/choices.md records them. Each grid runs over ``--seeds`` (seed s: old model 2s, new 2s+1,
as in ``backfill reproduce``) and prints one row per seed and the mean.

    python bench/tune.py --dataset digits [--cache DIR] [--seeds S ...] [--scales S ...]
                         [--weights W ...] [--weight-methods M ...] [--adv-weights A ...]
                         [--fences F ...] [--bct K=V,K=V ...] [--advbct K=V,K=V ...]
                         [--ract K=V,K=V ...]
                         [--taus T ...] [--mc-weights L ...] [--hiddens H ...]

An empty list (e.g. ``--weights`` alone) skips that grid.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

from _common import experiment_parser

from backfill_lib import Experiment, ExperimentConfig, default_config, method_names
from backfill_lib.pipeline.tune import with_options


def _loss_options(text: str) -> dict[str, object]:
    """``'lambda_adv=2,r0=1,unseen=skip'`` -> ``{'lambda_adv': 2.0, 'r0': 1.0,
    'unseen': 'skip'}``: one set of loss options from the command line."""

    def value(word: str) -> object:
        if word == "none":
            return None
        try:
            return float(word)
        except ValueError:
            return word

    pairs = [item.partition("=") for item in text.split(",")]
    if any(not key or not sep or not word for key, sep, word in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE,KEY=VALUE..., got {text!r}")
    return {key: value(word) for key, _, word in pairs}


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--scales",
        type=float,
        nargs="*",
        default=[],
        help="cosine classifier scales of every model; judged by the independent models' mAP",
    )
    parser.add_argument(
        "--weights",
        type=float,
        nargs="*",
        default=[1.0, 3.0, 10.0],
        help="compatible-loss weights to try (none: skip that grid)",
    )
    parser.add_argument(
        "--weight-methods",
        nargs="+",
        default=list(method_names("compatible")),
        choices=method_names("compatible"),
        help="the compatible methods whose --weights are gridded, in this order",
    )
    parser.add_argument(
        "--adv-weights", type=float, nargs="*", default=[], help="AdvBCT lambda_adv to try"
    )
    parser.add_argument(
        "--fences",
        type=lambda text: None if text == "none" else float(text),
        nargs="*",
        default=[],
        help="AdvBCT class-radius outlier fences to try ('none': the plain max), each with "
        "unseen classes skipped and synthesised",
    )
    option_set_examples = {
        "bct": "'unseen=skip' (classes the old model never saw get no loss; default: "
        "synthesised classifier rows)",
        "advbct": "'r0=1' (the reference radius; default: the mean class radius) or the "
        "authors' settings 'lambda_adv=2,r0=1,unseen=skip'",
        "ract": "'tau=0.1' (its softmax temperature)",
    }
    for method, example in option_set_examples.items():
        parser.add_argument(
            f"--{method}",
            type=_loss_options,
            nargs="*",
            default=[],
            metavar="K=V,K=V",
            help=f"{method} option sets, each one grid point, e.g. {example} "
            "(values: numbers, 'none', or words)",
        )
    parser.add_argument("--taus", type=float, nargs="*", default=[0.05, 0.1, 0.2])
    parser.add_argument("--mc-weights", type=float, nargs="*", default=[0.5, 1.0, 2.0])
    parser.add_argument(
        "--hiddens", type=int, nargs="*", default=[], help="psi hidden widths (0: linear psi)"
    )
    args = parser.parse_args()

    def run(label: str, config: ExperimentConfig, method: str) -> dict:
        """One candidate over the seeds; prints a row per seed and their mean."""
        rows = []
        for seed in args.seeds:
            cfg = replace(  # the model seeds of `backfill reproduce --seeds seed`
                config,
                old=replace(config.old, seed=2 * seed),
                new=replace(config.new, seed=2 * seed + 1),
            )
            experiment = Experiment(cfg, args.data_root, args.cache)
            res = experiment.results("random")["methods"]
            row = {
                "old/old": res["old/old"]["final_mAP"],
                "new/new": res["new/new"]["final_mAP"],
                "auc_mAP": res[method]["auc_mAP"],
                "t0_mAP": res[method]["mAP"][0],
                "final_mAP": res[method]["final_mAP"],
            }
            rows.append(row)
            print(f"{label}  seed {seed}  " + "  ".join(f"{v:.4f}" for v in row.values()))
        mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
        if len(rows) > 1:
            print(f"{label}  mean    " + "  ".join(f"{v:.4f}" for v in mean.values()))
        return mean

    base = default_config(
        args.dataset,
        validation=True,
        orders=("random",),
        data_root=args.data_root,
        cache_dir=args.cache,
    )

    def compatible(method: str, **options: object) -> ExperimentConfig:
        """``base`` running only ``method``, with its loss ``options`` replaced."""
        return with_options(base, method, {**base.compatible_losses[method], **options})

    header = "old/old  new/new  val_auc_mAP  val_mAP_t0 (cross)  val_final_mAP (own)"
    if args.scales:
        print(f"classifier scale: {header}")
    for scale in args.scales:
        old, new = (replace(t, classifier_scale=scale) for t in (base.old, base.new))
        run(f"scale {scale:5.1f}", replace(base, old=old, new=new, methods=()), "new/new")
    if args.weights:
        print(f"method  weight: {header}")
    for method in args.weight_methods if args.weights else ():
        for weight in args.weights:
            run(f"{method:7s} {weight:6g}", compatible(method, weight=weight), method)
    if args.adv_weights:
        print(f"advbct lambda_adv: {header}")
    for adv_weight in args.adv_weights:
        cfg = compatible("advbct", lambda_adv=adv_weight)
        run(f"advbct lambda_adv {adv_weight:5.2f}", cfg, "advbct")
    if args.fences:
        print(f"advbct boundary (unseen, fence): {header}")
    for fence in args.fences:
        for unseen in ("skip", "synthesise"):
            cfg = compatible("advbct", outlier_fence=fence, unseen=unseen)
            run(f"advbct {unseen:10s} fence {fence}", cfg, "advbct")
    for method in option_set_examples:
        option_sets = getattr(args, method)
        if option_sets:
            print(f"{method} options: {header}")
        for options in option_sets:
            label = ",".join(f"{key}={value}" for key, value in options.items())
            run(f"{method} {label}", compatible(method, **options), method)
    if args.taus and args.mc_weights:
        print(f"rt+mc tau lambda: {header}")
    for tau in args.taus if args.mc_weights else ():
        for mc_weight in args.mc_weights:
            cfg = with_options(base, "rt+mc", {"tau": tau, "mc_weight": mc_weight})
            run(f"rt+mc {tau:5.2f} {mc_weight:6.1f}", cfg, "rt+mc")

    if args.hiddens:
        print(f"psi hidden width: {header}")
    for hidden in args.hiddens:
        for method in ("rt", "rt+mc"):
            cfg = with_options(base, method, {"hidden": hidden})
            run(f"{method:5s} hidden {hidden:4d}", cfg, method)


if __name__ == "__main__":
    main()
