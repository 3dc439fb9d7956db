"""Wall time of training psi with the metric-compatible loss (``rt+mc``) on the embedded default.

Trains (or loads) the old and new models first, then times ``fit_transformation`` alone on
their cached training embeddings, with the default ``TransformConfig(mc_weight=1)``.
Goal: under 10 s on a 2-core CPU.

    python bench/rt_mc_training.py

Last line: ``ratio <seconds / 10 s goal>``.
"""

from __future__ import annotations

import tempfile
import time

from backfill_lib import Experiment, default_config, fit_transformation


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        exp = Experiment(default_config("digits"), cache_dir=cache)
        new, old = exp.embeddings("new", "train"), exp.embeddings("old", "train")
        labels = exp.data.training_data("new")[1]
        start = time.perf_counter()
        fit_transformation(new, old, labels, exp.config.transformations["rt+mc"])
        seconds = time.perf_counter() - start
    print(
        f"rt+mc psi training on digits ({len(labels)} images, "
        f"{exp.config.transformations['rt+mc'].epochs} epochs): {seconds:.2f} s"
    )
    print(f"ratio {seconds / 10:.3f}")


if __name__ == "__main__":
    main()
