"""backfill_lib: online backfilling for large-scale image retrieval.

Modules, in the order the data flows:

- images: ``data`` (datasets by name) over ``dataset``, ``cifar``, ``folders``; ``splits``
  (which images each model trains on and which are queried);
- models and training: ``models``, ``losses``, ``training``, ``transformation`` (psi);
- methods: ``methods`` (the registry: what each method is, needs and looks like);
- experiments: ``config`` -> ``artefacts`` (cached models, embeddings, curves) ->
  ``experiments`` (evaluation) using ``backfill`` (merge rules) and ``metrics``;
- outputs: ``report``, ``plots``, ``widgets``; ``index`` serves the merge on faiss;
  ``reproduce`` and ``cli`` run it all;
- at scale (docs/scale.md): ``topk`` (mAP@k / recall@k curves without a full ranking),
  ``simulate`` (old/new embedding pairs of any size), ``job`` (the crash-safe backfill job).

What ``import backfill_lib`` offers is listed in ``__all__`` below: the package's public
API, documented in docs/api.md. Each module's ``__all__`` is what the other modules and the
tests use; a name with a leading underscore is private to its module. (No exported name
repeats a module's name, which would hide that module: ``reproduce`` is
``backfill_lib.reproduce.reproduce``.)
"""

from .backfill import (
    TwoPartEmbeddings,
    distance_rank_merge,
    make_order,
    reverse_transformation,
    single_space,
)
from .config import ExperimentConfig, default_config
from .data import load_dataset
from .experiments import Experiment, notebook_experiment
from .index import BackfillIndex
from .job import run_backfill_job
from .losses import AdvBCTLoss, BCTLoss, L2Loss, MetricCompatibleLoss, RACTLoss
from .methods import Method, get_method, method_names, register
from .metrics import Curve, auc, evaluate_curve, negative_flip_rate, relative_gain
from .simulate import Simulation
from .topk import topk_curve
from .training import TrainConfig
from .transformation import TransformConfig, fit_transformation

__version__ = "0.1.0"

__all__ = [
    "AdvBCTLoss",
    "BCTLoss",
    "BackfillIndex",
    "Curve",
    "Experiment",
    "ExperimentConfig",
    "L2Loss",
    "Method",
    "MetricCompatibleLoss",
    "RACTLoss",
    "Simulation",
    "TrainConfig",
    "TransformConfig",
    "TwoPartEmbeddings",
    "auc",
    "default_config",
    "distance_rank_merge",
    "evaluate_curve",
    "fit_transformation",
    "get_method",
    "load_dataset",
    "make_order",
    "method_names",
    "negative_flip_rate",
    "notebook_experiment",
    "register",
    "relative_gain",
    "reverse_transformation",
    "run_backfill_job",
    "single_space",
    "topk_curve",
]
