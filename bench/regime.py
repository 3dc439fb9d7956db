"""The regime question: do BCT's lead over the independent new model and claim (b)'s margin
(``rt`` against ``drm``) move when the new models train longer?

On the validation split (80/20 of the training images; the test split is never read), for
each number of epochs E, the independent new model and BCT's model train for E epochs (the
old model keeps the profile's). Recorded per E, random order: old/old and each new model's
final mAP, BCT's mAP at t = 0 (its queries against the old gallery, BCT's criterion), the
AUC-mAP of ``drm`` and ``rt``, and the paired bootstrap intervals of ``bct - new/new`` (final
mAP) and ``rt - drm`` (AUC-mAP). Each E is written to ``--out`` as soon as it is done and
read back on a rerun with the same configuration and data, so the study spans sessions on
machines whose cache is empty (commit ``--out`` in between).

    python bench/regime.py --dataset tinyimagenet:../shared/datasets/tinyimagenet-dev100.tar \
        --epochs 16 32 64 --out figures/tinyimagenet-dev100/regime.json [--options FILE]
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from _common import experiment_parser

from backfill_lib import Experiment, default_config
from backfill_lib.pipeline.options import load_options
from backfill_lib.storage import as_json, load_json, save_json

METHODS = ("drm", "rt", "bct")


def measure(experiment: Experiment) -> dict:
    """The regime numbers of one experiment (validation split, random order), in %."""
    results = experiment.results("random")
    methods, differences = results["methods"], results["differences"]

    def interval(key: str, metric: str) -> list[float]:
        return [100 * v for v in differences[key][metric]]

    return {
        "old/old": 100 * methods["old/old"]["final_mAP"],
        "new/new": 100 * methods["new/new"]["final_mAP"],
        "bct": 100 * methods["bct"]["final_mAP"],
        "bct_t0": 100 * methods["bct"]["mAP"][0],
        "bct_compatible": methods["bct"]["mAP"][0] > methods["old/old"]["final_mAP"],
        "bct - new/new": interval("bct - new/new", "final_mAP"),
        "auc drm": 100 * methods["drm"]["auc_mAP"],
        "auc rt": 100 * methods["rt"]["auc_mAP"],
        "rt - drm": interval("rt - drm", "auc_mAP"),
        "accuracy": {m: results["models"][m]["accuracy"] for m in ("old", "new", "bct")},
    }


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--epochs", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--options", type=Path, help="an options file (`backfill tune`)")
    parser.add_argument("--out", type=Path, required=True, help="the JSON record (resumed)")
    args = parser.parse_args()
    options = load_options(args.options) if args.options else None
    base = default_config(
        args.dataset,
        args.profile,
        options,
        validation=True,
        methods=METHODS,
        orders=("random",),
        data_root=args.data_root,
        cache_dir=args.cache,
    )
    fix = f"delete {args.out} to measure again"
    record = load_json(args.out, dict, fix) if args.out.exists() else {}
    for epochs in args.epochs:
        config = replace(base, new=replace(base.new, epochs=epochs))
        experiment = Experiment(config, args.data_root, args.cache)
        made_on = {
            "config": as_json(asdict(config)),
            "fingerprint": experiment.data.dataset.fingerprint(("train",)),
        }
        done = record.get(str(epochs))
        if done is None or {k: done.get(k) for k in made_on} != made_on:
            record[str(epochs)] = {**measure(experiment), **made_on}
            save_json(dict(sorted(record.items(), key=lambda kv: int(kv[0]))), args.out)
        row = record[str(epochs)]
        print(
            f"{epochs:3d} epochs: old/old {row['old/old']:.2f}, new/new {row['new/new']:.2f}, "
            f"bct {row['bct']:.2f} (t = 0 {row['bct_t0']:.2f}; bct - new/new "
            f"[{row['bct - new/new'][0]:+.2f}, {row['bct - new/new'][1]:+.2f}]), AUC drm "
            f"{row['auc drm']:.2f}, rt {row['auc rt']:.2f} (rt - drm "
            f"[{row['rt - drm'][0]:+.2f}, {row['rt - drm'][1]:+.2f}])"
        )
    print(f"wrote {args.out}; options: {base.options}")


if __name__ == "__main__":
    main()
