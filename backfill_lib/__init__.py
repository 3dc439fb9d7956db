"""backfill_lib: online backfilling for large-scale image retrieval.

Sub-packages by role, each importing only from those listed before it (docs/architecture.md;
``tests/test_architecture.py`` enforces it):

- ``storage``: the cache folder, configuration keys, atomic writes (a module);
- ``core``: the method itself: merge rules, backfill orders, the exact metrics, psi and rho;
- ``data``: datasets by name, the settings' splits, augmentation;
- ``models``: backbones and the embedding model;
- ``methods``: every method, one module each, registered beside its loss;
- ``training``: the training loop, objectives, the checkpoint cache, fitting psi;
- ``serving``: ``BackfillIndex`` on faiss, the crash-safe job, top-k curves, simulation;
- ``reporting``: figures, tables and the output folder;
- ``pipeline``: the configuration and ``Experiment``, METHOD.md's protocol as stages (and
  ``evaluate_upgrade``, the same on two models' embeddings);
- ``explorer`` (the ipywidgets explorer) and ``cli`` (the ``backfill`` command) on top.

What ``import backfill_lib`` offers is listed in ``__all__`` below: the public API the
notebooks, the solutions and users import from, documented in docs/api.md. Each module's
own ``__all__`` is what the other modules and the tests use; a name with a leading
underscore is private to its module.
"""

from .core.merge import (
    TwoPartEmbeddings,
    cross_part_misranking,
    distance_rank_merge,
    pairwise_distances,
    part_distances,
    rank_gallery,
    single_space,
    transformed_query_merge,
)
from .core.metrics import Curve, auc, evaluate_curve, negative_flip_rate, relative_gain
from .core.orders import backfilled_mask, make_order, random_order
from .core.statistics import verdict
from .core.transformation import (
    MetricCompatibleLoss,
    PsiNetwork,
    Transformation,
    TransformConfig,
    regression_loss,
)
from .data.load import load_dataset
from .explorer import BackfillExplorer, ExplorerData
from .methods.advbct import AdvBCTLoss
from .methods.bct import BCTLoss
from .methods.l2 import L2Loss
from .methods.ract import RACTLoss
from .methods.registry import Method, get_method, method_names, register
from .pipeline.config import ExperimentConfig, default_config
from .pipeline.experiment import Experiment
from .pipeline.gallery_job import backfill_experiment_gallery
from .pipeline.notebook import notebook_experiment
from .pipeline.pack import Pack, build_pack, load_pack, save_pack
from .pipeline.pack_experiment import PackExperiment
from .pipeline.upgrade import (
    UpgradeReport,
    embed_image_folder,
    evaluate_upgrade,
    load_psi,
    save_psi,
    split_items,
)
from .reporting.plots import (
    plot_class_map,
    plot_compatibility,
    plot_curves,
    plot_distance_cdfs,
    plot_distance_histograms,
    plot_gain_bars,
    plot_image_grid,
    plot_quality_against_compute,
)
from .reporting.tables import column_glossary, format_compatibility, format_table
from .serving.index import BackfillIndex
from .serving.job import run_backfill_job
from .serving.simulate import Simulation, calibrate, simulation_targets
from .serving.topk import TopKCurve, topk_curve
from .training.embedding import accuracy
from .training.trainer import TrainConfig
from .training.transformation import fit_transformation

__version__ = "0.1.0"

__all__ = [
    "AdvBCTLoss",
    "BCTLoss",
    "BackfillExplorer",
    "BackfillIndex",
    "Curve",
    "Experiment",
    "ExperimentConfig",
    "ExplorerData",
    "L2Loss",
    "Method",
    "MetricCompatibleLoss",
    "Pack",
    "PackExperiment",
    "PsiNetwork",
    "RACTLoss",
    "Simulation",
    "TopKCurve",
    "TrainConfig",
    "TransformConfig",
    "Transformation",
    "TwoPartEmbeddings",
    "UpgradeReport",
    "accuracy",
    "auc",
    "backfill_experiment_gallery",
    "backfilled_mask",
    "build_pack",
    "calibrate",
    "column_glossary",
    "cross_part_misranking",
    "default_config",
    "distance_rank_merge",
    "embed_image_folder",
    "evaluate_curve",
    "evaluate_upgrade",
    "fit_transformation",
    "format_compatibility",
    "format_table",
    "get_method",
    "load_dataset",
    "load_pack",
    "load_psi",
    "make_order",
    "method_names",
    "negative_flip_rate",
    "notebook_experiment",
    "pairwise_distances",
    "part_distances",
    "plot_class_map",
    "plot_compatibility",
    "plot_curves",
    "plot_distance_cdfs",
    "plot_distance_histograms",
    "plot_gain_bars",
    "plot_image_grid",
    "plot_quality_against_compute",
    "random_order",
    "rank_gallery",
    "register",
    "regression_loss",
    "relative_gain",
    "run_backfill_job",
    "save_pack",
    "save_psi",
    "simulation_targets",
    "single_space",
    "split_items",
    "topk_curve",
    "transformed_query_merge",
    "verdict",
]
