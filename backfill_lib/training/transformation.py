"""Fitting a transformation: psi (and rho) trained on cached embeddings of the frozen
backbones, in seconds on a CPU (METHOD.md section 4).

:func:`fit_transformation` minimises ``L_rt + mc_weight * L_mc`` (regression onto the old
embeddings, plus the metric-compatible contrastive loss, both from
:mod:`backfill_lib.core.transformation`) and returns the fitted
:class:`~backfill_lib.core.transformation.Transformation`, cached by its configuration.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..core.embeddings import class_means
from ..core.transformation import (
    MetricCompatibleLoss,
    PsiNetwork,
    Transformation,
    TransformConfig,
    heteroscedastic_loss,
    regression_loss,
)
from ..storage import config_key, load_torch, save_torch
from .trainer import TrainingDivergedError

__all__ = ["DISCRIMINATIVE_SCALE", "fit_transformation"]

DISCRIMINATIVE_SCALE = 16.0  # the cosine logits' scale of FastFill's discriminative term


def fit_transformation(
    new_embeddings: torch.Tensor,
    old_embeddings: torch.Tensor,
    labels: torch.Tensor,
    config: TransformConfig | None = None,
    cache_dir: Path | None = None,
    cache_config: dict | None = None,
) -> Transformation:
    """Train psi: ``L = L_rt + mc_weight * L_mc`` on frozen training embeddings (or solve
    ``L_rt`` in closed form, ``config.solver``).

    ``new_embeddings (N, d_n)``, ``old_embeddings (N, d_o)``, ``labels (N,)``; ``config``
    defaults to ``TransformConfig()`` (plain RT). With ``config.direction == "forward"`` the
    map is fitted from the old embeddings onto the new ones (FCT's h: its ``transform``
    takes old embeddings; with ``config.side_information``, ``old_embeddings`` holds each
    item's side-information after its embedding, and so must ``transform``'s input).
    Cached under ``cache_dir/checkpoints/transform-<key>.pt`` when ``cache_config`` is
    given.
    """
    config = config or TransformConfig()
    if config.direction == "forward":  # h: old -> new, the same fit with the roles swapped
        new_embeddings, old_embeddings = old_embeddings, new_embeddings
    for name, x in (("new_embeddings", new_embeddings), ("old_embeddings", old_embeddings)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    if len(new_embeddings) != len(old_embeddings) or len(labels) != len(new_embeddings):
        raise ValueError("new_embeddings, old_embeddings and labels must have the same length")
    torch.manual_seed(config.seed)
    fitted = Transformation.untrained(new_embeddings.shape[1], old_embeddings.shape[1], config)
    full_config = {**(cache_config or {}), "transform": asdict(config)}
    path = None
    if cache_dir is not None and cache_config is not None:
        path = Path(cache_dir) / "checkpoints" / f"transform-{config_key(full_config)}.pt"
        if path.exists():
            state = load_torch(path, full_config)
            return fitted.restore(state["modules"], state["history"])
    if config.solver == "adamw":
        fitted.history = _train(fitted, new_embeddings, old_embeddings, labels, config)
    else:
        fitted.history = _solve_linear(fitted.psi, new_embeddings, old_embeddings, config.solver)
    if fitted.history and not math.isfinite(fitted.history[-1]):
        raise TrainingDivergedError(f"psi training diverged (loss {fitted.history[-1]}); lower lr")
    fitted.modules.eval()
    if path is not None:
        record = {"config": full_config, "history": fitted.history}
        save_torch({**record, "modules": fitted.modules.state_dict()}, path)
    return fitted


@torch.no_grad()
def _solve_linear(
    psi: PsiNetwork, new: torch.Tensor, old: torch.Tensor, solver: str
) -> list[float]:
    """Set the linear psi to the map W ``(d_n, d_o)``, ``psi(n) = normalize(n W)``, that
    minimises ``||new W - old||^2`` (``least_squares``) or does so among matrices with
    orthonormal columns (``procrustes``: ``W = U V^T`` from the SVD ``new^T old = U S V^T``,
    Schonemann's solution). Computed in float64; returns ``[L_rt]`` of the fitted psi."""
    n, o = new.double(), old.double()  # (N, d_n), (N, d_o)
    if solver == "least_squares":
        w = torch.linalg.lstsq(n, o).solution  # (d_n, d_o)
    else:
        u, _, vh = torch.linalg.svd(n.T @ o, full_matrices=False)  # (d_n, k), (k, d_o)
        w = u @ vh  # (d_n, d_o), orthonormal columns (or rows when d_n < d_o)
    linear = cast(nn.Linear, psi.net)  # hidden = 0 (TransformConfig checks it)
    linear.weight.copy_(w.T.float())  # nn.Linear holds W^T (d_o, d_n)
    linear.bias.zero_()
    return [float(regression_loss(psi.eval()(new), old))]


def _train(
    fitted: Transformation,
    new_embeddings: torch.Tensor,
    old_embeddings: torch.Tensor,
    labels: torch.Tensor,
    config: TransformConfig,
) -> list[float]:
    """Train ``fitted``'s modules (psi, with rho and the uncertainty head where learned) with
    AdamW and cosine decay over ``config.epochs``; the mean loss of every epoch.
    ``new_embeddings`` are the map's inputs and ``old_embeddings`` its targets (swapped for
    a forward map)."""
    psi, rho, sigma, modules = fitted.psi, fitted.rho, fitted.uncertainty_head, fitted.modules
    mc_loss = MetricCompatibleLoss(config.tau)
    optimizer = torch.optim.AdamW(
        modules.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    classes = None
    if config.discriminative_weight:  # the target space's classifier: its class means
        classes = F.normalize(class_means(old_embeddings, labels, int(labels.max()) + 1), dim=1)
    n = len(labels)
    batch = min(config.batch_size, n)
    steps = n // batch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs * steps)
    gen = torch.Generator().manual_seed(config.seed)
    history = []
    for _ in tqdm(
        range(config.epochs), desc="psi" if config.mc_weight == 0 else "psi+mc", leave=False
    ):
        modules.train()
        order = torch.randperm(n, generator=gen)
        running = torch.zeros(())
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            new, old = new_embeddings[idx], old_embeddings[idx]  # (b, d_n), (b, d_o)
            transformed = psi(new)  # (b, d_o)
            if sigma is not None:  # FastFill: the regression with a learned variance
                loss = heteroscedastic_loss(transformed, old, sigma(new))
            else:
                loss = regression_loss(transformed, old)  # L_rt
            if classes is not None:  # FastFill's discriminative term, cosine logits
                logits = DISCRIMINATIVE_SCALE * transformed @ classes.T  # (b, C)
                loss = loss + config.discriminative_weight * F.cross_entropy(logits, labels[idx])
            if config.mc_weight:
                head = rho(new) if rho is not None else new  # (b, d_n): the new side
                mc = mc_loss(head, labels[idx], ref_emb=old, transformed=transformed)
                loss = loss + config.mc_weight * mc  # + lambda * L_mc
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.detach()
        history.append(float(running) / steps)
    return history
