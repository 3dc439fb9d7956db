"""Why AdvBCT's class radius ignores outliers: the boundary each radius rule draws.

For every class the old model was trained on, prints the old model's class radius two ways
(the plain maximum distance of its old training embeddings to their centre, METHOD.md's
literal reading; and the largest distance inside Tukey's 1.5 IQR fence, the AdvBCT
authors' rule) and the share of the independent new model's embeddings of the same images
that fall outside each boundary. The elastic-boundary loss only pushes embeddings that are
outside, so a share near 0 means the loss does not constrain a new model at all. Reads
the models of the reported setting (seed 0) from the cache, on training images only.

    python bench/advbct_radii.py --dataset imagefolder:../shared/datasets/cifar10 [--cache DIR]
"""

from __future__ import annotations

from _common import experiment_parser

from backfill_lib import Experiment
from backfill_lib.core.embeddings import class_means
from backfill_lib.methods.advbct import class_radii
from backfill_lib.pipeline.config import dataset_classes
from backfill_lib.pipeline.reproduce import setting_config


def main() -> None:
    args = experiment_parser(__doc__.splitlines()[0]).parse_args()
    experiment = Experiment(
        setting_config(
            args.dataset,
            "cpu",
            "extended-class",
            0,
            classes=dataset_classes(args.dataset, "cpu", args.data_root, args.cache),
        ),
        args.data_root,
        args.cache,
    )
    labels = experiment.data.training_data("new")[1]
    old = experiment.embeddings("old", "train")
    new = experiment.embeddings("new", "train")
    centres = class_means(old, labels, experiment.data.split.old_classes)
    radii = zip(
        class_radii(old, labels, centres, None), class_radii(old, labels, centres), strict=True
    )
    print("class  images  |centre|  radius: max  fenced   new outside: max  fenced")
    for c, (centre, (plain, fenced)) in enumerate(zip(centres, radii, strict=True)):
        own = labels == c
        new_distance = (new[own] - centre).norm(dim=1)
        outside_plain = (new_distance > plain).float().mean()
        outside_fenced = (new_distance > fenced).float().mean()
        print(
            f"{c:5d}  {int(own.sum()):6d}  {centre.norm():8.2f}  {plain:11.2f}  {fenced:6.2f}"
            f"   {outside_plain:16.1%}  {outside_fenced:6.1%}"
        )


if __name__ == "__main__":
    main()
