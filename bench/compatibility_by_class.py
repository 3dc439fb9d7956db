"""Where the compatibility criterion is won or lost: cross-model mAP per class.

On the validation split (80/20 of the training images, never the reported test split),
prints for each compatible method the mAP of its queries against the old gallery, per
class, and its means over the classes the old model saw and those it never saw, beside
old/old. Also prints how tightly the old model's own training embeddings sit around their
class's classifier row (mean cosine): a class-level constraint such as BCT's pulls new
queries towards those rows, which is only as good as old/old when the old embeddings
themselves sit close to them.

    python bench/compatibility_by_class.py [--dataset digits] [--cache DIR] [--bct-unseen ...]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch.nn.functional as F
from _common import experiment_parser

from backfill_lib import Experiment, default_config, method_names
from backfill_lib.training.embedding import embed


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--bct-unseen",
        nargs="+",
        default=["synthesise", "skip"],
        choices=["synthesise", "skip"],
        help="BCT variants for classes the old model never saw",
    )
    args = parser.parse_args()
    base = default_config(
        args.dataset,
        validation=True,
        methods=method_names("compatible"),
        data_root=args.data_root,
        cache_dir=args.cache,
    )
    rows = {}
    for unseen in args.bct_unseen:
        losses = {
            **base.compatible_losses,
            "bct": {**base.compatible_losses["bct"], "unseen": unseen},
        }
        experiment = Experiment(replace(base, compatible_losses=losses), args.data_root, args.cache)
        per_class = experiment.compatibility_by_class()
        for name, values in per_class.items():
            label = f"bct ({unseen})" if name == "bct" else name
            rows.setdefault(label, values)
    seen = experiment.data.split.old_classes
    classes = sorted(rows["old/old"])
    print(
        f"mAP (%) against the old gallery, validation split; classes < {seen} seen by the old model"
    )
    print(f"{'query model':16s} {'seen':>6s} {'unseen':>6s} {'all':>6s}   per class")
    for label, values in rows.items():
        ap = np.array([values[c] for c in classes])
        is_seen = np.array(classes) < seen
        print(
            f"{label:16s} {100 * ap[is_seen].mean():6.1f} {100 * ap[~is_seen].mean():6.1f} "
            f"{100 * ap.mean():6.1f}   " + " ".join(f"{100 * v:4.0f}" for v in ap)
        )
    old_model = experiment.model("old")
    keep = experiment.data.split.old_indices
    embeddings = embed(old_model, experiment.data.dataset.train_images[keep])
    own_row = F.normalize(old_model.classifier.weight.detach(), dim=1)
    cosine = (embeddings * own_row[experiment.data.dataset.train_labels[keep]]).sum(1)
    print(
        f"old training embeddings: mean cosine to their own class row {cosine.mean():.2f} "
        f"(sd {cosine.std():.2f})"
    )


if __name__ == "__main__":
    main()
