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

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.transformation import (
    MetricCompatibleLoss,
    PsiNetwork,
    RhoHead,
    Transformation,
    TransformConfig,
    regression_loss,
)
from ..storage import config_key, load_torch, save_torch
from .trainer import TrainingDivergedError

__all__ = ["fit_transformation"]


def fit_transformation(
    new_embeddings: torch.Tensor,
    old_embeddings: torch.Tensor,
    labels: torch.Tensor,
    config: TransformConfig | None = None,
    cache_dir: Path | None = None,
    cache_config: dict | None = None,
) -> Transformation:
    """Train psi: ``L = L_rt + mc_weight * L_mc`` on frozen training embeddings.

    ``new_embeddings (N, d_n)``, ``old_embeddings (N, d_o)``, ``labels (N,)``; ``config``
    defaults to ``TransformConfig()`` (plain RT). Cached under
    ``cache_dir/checkpoints/transform-<key>.pt`` when ``cache_config`` is given.
    """
    config = config or TransformConfig()
    for name, x in (("new_embeddings", new_embeddings), ("old_embeddings", old_embeddings)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    if len(new_embeddings) != len(old_embeddings) or len(labels) != len(new_embeddings):
        raise ValueError("new_embeddings, old_embeddings and labels must have the same length")
    torch.manual_seed(config.seed)
    psi = PsiNetwork(new_embeddings.shape[1], old_embeddings.shape[1], config.hidden)
    rho = RhoHead(new_embeddings.shape[1]) if config.learn_new_head else None
    modules = nn.ModuleList([psi] + ([rho] if rho is not None else []))
    full_config = {**(cache_config or {}), "transform": asdict(config)}
    path = None
    if cache_dir is not None and cache_config is not None:
        path = Path(cache_dir) / "checkpoints" / f"transform-{config_key(full_config)}.pt"
        if path.exists():
            state = load_torch(path, full_config)
            modules.load_state_dict(state["modules"])
            return Transformation(psi.eval(), rho, state["history"])
    history = _train(modules, new_embeddings, old_embeddings, labels, config)
    if history and not math.isfinite(history[-1]):
        raise TrainingDivergedError(f"psi training diverged (loss {history[-1]}); lower lr")
    modules.eval()
    if path is not None:
        save_torch(
            {"config": full_config, "history": history, "modules": modules.state_dict()}, path
        )
    return Transformation(psi, rho, history)


def _train(
    modules: nn.ModuleList,
    new_embeddings: torch.Tensor,
    old_embeddings: torch.Tensor,
    labels: torch.Tensor,
    config: TransformConfig,
) -> list[float]:
    """Train ``modules`` (psi, then rho if learned) with AdamW and cosine decay over
    ``config.epochs``; the mean loss of every epoch."""
    psi, rho = modules[0], modules[1] if len(modules) > 1 else None
    mc_loss = MetricCompatibleLoss(config.tau)
    optimizer = torch.optim.AdamW(
        modules.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
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
            loss = regression_loss(transformed, old)  # L_rt
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
