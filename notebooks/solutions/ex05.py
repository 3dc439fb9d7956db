"""Notebook 05, metric-compatible learning: solutions."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from backfill_lib import Experiment

from .ex04 import transformation_auc


def metric_compatible_loss(
    transformed: torch.Tensor,
    labels: torch.Tensor,
    new: torch.Tensor,
    old: torch.Tensor,
    tau: float,
) -> torch.Tensor:
    """Exercise 1 (implement). L_mc over a batch, every anchor at once: anchor i's candidates
    are every old embedding o_j (logit <r_i, o_j> / tau, r_i = psi(phi_n(x_i))) and every new
    embedding n_j, j != i (logit <n_i, n_j> / tau), in one softmax; its positives are the
    candidates of its class; the loss is the mean over anchors of the mean -log p over its
    positives. All inputs ``(B, d)`` unit vectors but ``labels (B,)``."""
    to_old = transformed @ old.T / tau
    to_new = (new @ new.T / tau).masked_fill(torch.eye(len(new), dtype=torch.bool), float("-inf"))
    log_p = F.log_softmax(torch.cat([to_old, to_new], dim=1), dim=1)
    same = labels[:, None] == labels[None]
    positives = torch.cat([same, same & ~torch.eye(len(new), dtype=torch.bool)], dim=1)
    per_anchor = -(log_p.masked_fill(~positives, 0).sum(1)) / positives.sum(1)
    return per_anchor.mean()


def rt_mc_auc(
    experiment: Experiment, tau: float | None = None, weight: float | None = None
) -> float:
    """Exercise 2 (predict). What do the temperature tau and the weight lambda of L_mc do?

    Predictions. lambda = 0 leaves only the regression: RT+MC *is* RT, to the last digit
    (same configuration, same seed: AUC-mAP 80.0 on digits). A ten times softer softmax,
    tau = 1.0 instead of 0.1, barely separates positives from negatives (logits within
    +-1): the loss stops pushing irrelevant items of the other part away, and AUC-mAP falls
    from 88.3 to 83.7. Returns RT+MC's AUC-mAP (random order) with ``tau`` and ``weight``
    replacing the defaults.
    """
    config = experiment.config.transformations["rt+mc"]
    config = replace(
        config,
        tau=config.tau if tau is None else tau,
        mc_weight=config.mc_weight if weight is None else weight,
    )
    return transformation_auc(experiment, config)
