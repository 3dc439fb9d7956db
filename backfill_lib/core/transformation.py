"""The reverse transformation of METHOD.md section 4: psi, rho and what they are trained on.

Three words, three things:

- :class:`PsiNetwork` (psi) maps a new embedding into the old space, ``(B, d_n) -> (B, d_o)``;
  :class:`RhoHead` (rho) is the optional light head on the new side, ``(B, d_n) -> (B, d_n)``.
- A :class:`Transformation` is a *fitted* psi (and rho): what a method such as ``rt`` or
  ``rt+mc`` applies to the new model's embeddings.
- A :class:`TransformConfig` says how one is fitted (by
  :func:`backfill_lib.training.transformation.fit_transformation`): the size of psi, the
  optimiser, and the objective ``L_rt + mc_weight * L_mc``, whose two terms are
  :func:`regression_loss` and :class:`MetricCompatibleLoss`; or a linear psi in closed form
  (``solver``: least squares, orthogonal Procrustes). ``direction="forward"`` fits the same
  network the other way, old space -> new space: FCT's h, which upgrades stored old
  embeddings instead of mapping queries back; FastFill's h adds a discriminative term and
  an :class:`UncertaintyHead` that predicts each item's error (its backfill order).

The merge rule that uses psi's output is :func:`backfill_lib.core.merge.transformed_query_merge`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import check_same_dim

__all__ = [
    "DIRECTIONS",
    "SOLVERS",
    "MetricCompatibleLoss",
    "PsiNetwork",
    "RhoHead",
    "TransformConfig",
    "Transformation",
    "UncertaintyHead",
    "heteroscedastic_loss",
    "regression_loss",
    "side_information",
]


SOLVERS = ("adamw", "least_squares", "procrustes")
DIRECTIONS = ("reverse", "forward")


@dataclass(frozen=True)
class TransformConfig:
    """How psi (and rho) are fitted. ``mc_weight`` = 0 gives plain RT (regression only).

    ``hidden``: psi's hidden width (0: one linear map); ``tau``: the metric-compatible
    loss's temperature; ``learn_new_head``: train rho too (else the new side is the
    identity and the system at t = 1 is new/new by construction). ``solver``: ``adamw``
    (the objective above, by gradient descent), or a linear map without bias in closed form
    from the regression term alone: ``least_squares`` (any matrix) or ``procrustes``
    (orthonormal columns, a rotation when the dims agree). ``direction``: ``reverse`` (psi,
    new -> old) or ``forward`` (FCT's h, old -> new; regression only). FastFill's terms, for a
    forward map: ``discriminative_weight`` weighs a cross-entropy of ``h(phi_o(x))`` against
    the class means of the target embeddings (cosine logits at scale 16: the new model's
    classifier, from embeddings alone); ``learn_uncertainty`` trains an
    :class:`UncertaintyHead` with the regression in the heteroscedastic form
    ``e * exp(-s) + s`` (``e`` an item's squared error, ``s`` its predicted log variance).
    ``side_information``: for a forward map, FCT's side-information, each image pooled to
    this many pixels a side (:func:`side_information`) and given to h beside the old
    embedding (0: none). Each method registers its defaults (:mod:`backfill_lib.methods`);
    docs/choices.md records how they were chosen.
    """

    hidden: int = 256
    epochs: int = 40
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    mc_weight: float = 0.0
    tau: float = 0.1
    learn_new_head: bool = False
    seed: int = 0
    solver: str = "adamw"
    direction: str = "reverse"
    discriminative_weight: float = 0.0
    learn_uncertainty: bool = False
    side_information: int = 0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver {self.solver!r}: choose one of {', '.join(SOLVERS)}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction {self.direction!r}: choose {' or '.join(DIRECTIONS)}")
        regression_only = self.solver != "adamw" or self.direction == "forward"
        if regression_only and (self.mc_weight or self.learn_new_head):
            raise ValueError(
                f"{self.solver}, {self.direction}: a closed-form or forward map fits the "
                "regression term alone; set mc_weight 0 and learn_new_head False"
            )
        if self.solver != "adamw" and self.hidden:
            raise ValueError(f"{self.solver} fits a linear map: set hidden 0")
        fastfill = self.discriminative_weight or self.learn_uncertainty or self.side_information
        if fastfill and (self.direction != "forward" or self.solver != "adamw"):
            raise ValueError(
                "discriminative_weight, learn_uncertainty and side_information belong to a forward "
                "map trained by gradient descent (FCT, FastFill): set direction 'forward' and "
                "solver 'adamw'"
            )


class PsiNetwork(nn.Module):
    """psi: new space -> old space, a residual-free MLP ``(B, d_n) -> (B, d_o)`` (unit output).

    ``hidden`` = 0 makes it a single linear map.
    """

    def __init__(self, new_dim: int, old_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.new_dim, self.old_dim = new_dim, old_dim
        self.net: nn.Module
        if hidden:
            self.net = nn.Sequential(
                nn.Linear(new_dim, hidden),
                nn.BatchNorm1d(hidden),
                nn.ReLU(),
                nn.Linear(hidden, old_dim),
            )
        else:
            self.net = nn.Linear(new_dim, old_dim)

    def forward(self, new_embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(new_embeddings), dim=1)  # (B, d_o), unit rows


class RhoHead(nn.Module):
    """rho: an optional light head on the new embedding, ``(B, d_n) -> (B, d_n)`` unit.

    A residual linear layer initialised at zero, so training starts from the identity.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, new_embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(new_embeddings + self.linear(new_embeddings), dim=1)  # (B, d_n)


class UncertaintyHead(nn.Module):
    """FastFill's uncertainty: an item's predicted log variance ``s`` of h's error,
    ``(B, d_in) -> (B,)``, from the same input as h (a small MLP)."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings).squeeze(1)  # (B,)


@dataclass
class Transformation:
    """A fitted psi (or h) and optional rho and uncertainty head, with the loss of every
    epoch of its fit."""

    psi: PsiNetwork
    rho: RhoHead | None
    history: list[float]
    uncertainty_head: UncertaintyHead | None = None
    side_information: int = 0  # a forward map's input: the old embedding and this side-info

    @classmethod
    def untrained(cls, in_dim: int, out_dim: int, config: TransformConfig) -> Transformation:
        """The modules ``config`` asks for, at initialisation (in this order, from the torch
        seed): psi ``(B, in_dim) -> (B, out_dim)``, then rho and the uncertainty head on
        its input where learned."""
        psi = PsiNetwork(in_dim, out_dim, config.hidden)
        rho = RhoHead(in_dim) if config.learn_new_head else None
        sigma = UncertaintyHead(in_dim) if config.learn_uncertainty else None
        return cls(psi, rho, [], sigma, config.side_information)

    @property
    def modules(self) -> nn.ModuleList:
        """psi, rho and the uncertainty head (those learned): what is trained and saved."""
        parts = (self.psi, self.rho, self.uncertainty_head)
        return nn.ModuleList([m for m in parts if m is not None])

    def restore(self, modules_state: dict, history: list[float]) -> Transformation:
        """Load saved :attr:`modules` weights and the fit's loss history into this
        (:meth:`untrained`) transformation, ready to use (eval mode); returns it."""
        self.modules.load_state_dict(modules_state)
        self.modules.eval()
        self.history = list(history)
        return self

    @torch.no_grad()
    def transform(self, new_embeddings: torch.Tensor) -> torch.Tensor:
        """psi: ``(N, d_n) -> (N, d_o)`` unit."""
        return self.psi.eval()(new_embeddings)

    @torch.no_grad()
    def new_head(self, new_embeddings: torch.Tensor) -> torch.Tensor:
        """rho: ``(N, d_n) -> (N, d_n)``; the identity when rho is not learned."""
        return new_embeddings if self.rho is None else self.rho.eval()(new_embeddings)

    @torch.no_grad()
    def uncertainty(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(N,)``: each item's predicted log variance of the map's error (FastFill's
        backfill order: most uncertain first); a ValueError when none was learned."""
        if self.uncertainty_head is None:
            raise ValueError("this transformation learned no uncertainty (learn_uncertainty)")
        return self.uncertainty_head.eval()(embeddings)


@torch.no_grad()
def side_information(images: torch.Tensor, size: int, batch: int = 4096) -> torch.Tensor:
    """FCT's side-information, its cheapest kind: each uint8 image ``(N, C, H, W)`` averaged
    down to ``size x size`` pixels and stored as uint8 beside its old embedding
    (``C * size**2`` bytes per item), read back as ``(N, C * size**2)`` floats in [0, 1]."""
    pooled = [
        F.adaptive_avg_pool2d(images[i : i + batch].float(), size).round().flatten(1)
        for i in range(0, len(images), batch)
    ]
    return torch.cat(pooled) / 255  # (N, C * size * size), as stored: uint8


def heteroscedastic_loss(
    transformed: torch.Tensor, target: torch.Tensor, log_variance: torch.Tensor
) -> torch.Tensor:
    """The regression with a learned per-item variance (Kendall and Gal, 2017, as FastFill
    trains h): ``mean(e * exp(-s) + s)`` for squared errors ``e (B,)`` and predicted log
    variances ``s (B,)``: an item the map cannot fit may claim a large variance, at a
    price."""
    check_same_dim(transformed, target, "the transformation")
    error = (transformed - target.detach()).pow(2).sum(1)  # (B,)
    return (error * torch.exp(-log_variance) + log_variance).mean()


def regression_loss(transformed: torch.Tensor, old_embeddings: torch.Tensor) -> torch.Tensor:
    """L_rt = ``mean ||psi(phi_n(x)) - phi_o(x)||^2`` (``transformed`` already unit)."""
    check_same_dim(transformed, old_embeddings, "the reverse transformation")
    # (B, d_o) - (B, d_o) -> (B,) squared distances -> mean; the old side is a fixed target
    return (transformed - old_embeddings.detach()).pow(2).sum(1).mean()


class MetricCompatibleLoss(nn.Module):
    """Contrastive loss over both parts of a backfilling gallery in ONE softmax (L_mc).

    For anchor ``i``: candidates are every old embedding ``o_j`` (logit ``<r_i, o_j>/tau``,
    ``r_i = psi(phi_n(x_i))``) and every other new embedding ``n_j`` (logit
    ``<n_i, n_j>/tau``, ``n = rho(phi_n(x))``). Positives are the candidates of the anchor's
    class: ``L = -1/|P_i| sum_{p in P_i} log softmax_p``, averaged over anchors. A positive
    of either part must outscore a negative of either part: what a correct merge needs.

    ``forward(embeddings, labels, ref_emb, transformed)``: ``embeddings (B, d_n)`` the new
    side ``n``, ``ref_emb (B, d_o)`` the old model's embeddings of the same images,
    ``transformed (B, d_o)`` psi's output ``r``.
    """

    def __init__(self, tau: float = 0.1) -> None:
        super().__init__()
        self.tau = tau

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor,
        transformed: torch.Tensor,
    ) -> torch.Tensor:
        check_same_dim(transformed, ref_emb, "the metric-compatible loss")
        b = len(labels)
        self_mask = torch.eye(b, dtype=torch.bool, device=labels.device)  # (B, B)
        to_old = transformed @ ref_emb.detach().T  # (B, B): <r_i, o_j>, every j
        to_new = (embeddings @ embeddings.T).masked_fill(self_mask, float("-inf"))  # <n_i, n_j>
        logits = torch.cat([to_old, to_new], dim=1) / self.tau  # (B, 2B): one softmax
        same = labels[:, None] == labels[None]  # (B, B)
        positive = torch.cat([same, same & ~self_mask], dim=1)  # (B, 2B): P_i
        log_prob = logits.log_softmax(dim=1).masked_fill(~positive, 0.0)
        return (-log_prob.sum(1) / positive.sum(1)).mean()  # mean over anchors of the P_i mean
