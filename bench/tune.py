"""Choose the defaults on a validation split (never on the reported test split).

Trains on 80% of the training images, evaluates on the other 20% (``validation=True``),
and prints, for each candidate, the validation AUC-mAP of the online-backfilling curve
(random order) and, for the compatible methods, the cross-model and own mAP. The chosen
values are the defaults in ``backfill_lib/experiments.py`` and ``backfill_lib/training.py``;
the README records them.

    python bench/tune.py --dataset digits [--cache DIR] [--weights W ...] [--taus T ...]
                         [--mc-weights L ...]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from backfill_lib.experiments import Experiment, default_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root")
    parser.add_argument("--cache")
    parser.add_argument(
        "--weights",
        type=float,
        nargs="*",
        default=[1.0, 3.0, 10.0],
        help="compatible-loss weights to try (none: skip that grid)",
    )
    parser.add_argument("--taus", type=float, nargs="*", default=[0.05, 0.1, 0.2])
    parser.add_argument("--mc-weights", type=float, nargs="*", default=[0.5, 1.0, 2.0])
    args = parser.parse_args()
    base = default_config(args.dataset, validation=True, orders=("random",))
    if args.weights:
        print("method  weight  val_auc_mAP  val_cross_mAP  val_self_mAP")
    for method in ("bct", "advbct", "ract", "l2") if args.weights else ():
        for weight in args.weights:
            losses = dict(base.compatible_losses)
            losses[method] = {**losses[method], "weight": weight}
            cfg = replace(base, methods=(method,), compatible_losses=losses)
            exp = Experiment(cfg, args.data_root, args.cache)
            res = exp.results("random")["methods"][method]
            print(
                f"{method:7s} {weight:6.1f}  {res['auc_mAP']:.4f}       {res['mAP'][0]:.4f}"
                f"         {res['final_mAP']:.4f}"
            )
    print("method  tau    lambda  val_auc_mAP  val_mAP_t0")
    for tau in args.taus:
        for mc_weight in args.mc_weights:
            rt_mc = replace(base.rt_mc, tau=tau, mc_weight=mc_weight)
            cfg = replace(base, methods=("rt+mc",), rt_mc=rt_mc)
            res = Experiment(cfg, args.data_root, args.cache).results("random")["methods"]["rt+mc"]
            print(
                f"rt+mc   {tau:5.2f}  {mc_weight:6.1f}  {res['auc_mAP']:.4f}       "
                f"{res['mAP'][0]:.4f}"
            )


if __name__ == "__main__":
    main()
