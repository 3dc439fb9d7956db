"""Every loss of METHOD.md section 3-4 as a module: ``loss(new_embeddings, labels, ...)``.

All embeddings are unit vectors ``(B, d)`` and labels ``(B,)`` int64. Defaults and why:

- BCT: weight lambda = 1 (Shen et al.'s choice); classes the old model never saw use the
  synthesised classifier (rows = the old model's normalised class-mean embeddings, as in
  openBCT), so every image constrains the new model, not only old-class images.
- AdvBCT: discriminator Linear(d,128)-BN-ReLU-Linear(128,2), gradient-reversal scale
  alpha = 2 / (1 + exp(-10 p)) - 1 (the DANN ramp), reference radius r_0 = the mean class
  radius (the paper's per-dataset constant, made data-driven); from the authors' code, the
  adversarial weight falls linearly over training, the boundary loss averages over the
  embeddings outside their boundary, and a class's radius ignores outliers
  (:func:`class_radius`). Unlike the authors' code, classes the old model never saw get a
  boundary too, around the old model's embeddings of their images (better compatibility
  on a validation split). lambda_eb = 1 and lambda_adv = 0.1 (the paper: 1), chosen on a
  validation split: the unconditional discriminator pulls new embeddings of classes the old
  model never saw towards wherever the old model put them, so on digits a larger
  lambda_adv costs compatibility.
- RACT: tau = 0.05 (Zhang et al.), weight 1.
- Metric-compatible: tau = 0.1, weight 4 on digits; tau = 0.2, weight 16 for the CPU
  profile's 32x32 models (each chosen on a validation split, see docs/choices.md).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .models import Discriminator

__all__ = [
    "AdvBCTLoss",
    "BCTLoss",
    "class_means",
    "class_radii",
    "class_radius",
    "ElasticBoundaryLoss",
    "gradient_reversal",
    "L2Loss",
    "MetricCompatibleLoss",
    "RACTLoss",
    "regression_loss",
    "reversal_scale",
]


class BCTLoss(nn.Module):
    """Influence loss: cross-entropy of new embeddings through the frozen old classifier.

    ``old_weight (C_o, d)``: the old classifier's rows. ``synthesised (C, d)`` optional:
    rows for every class (old-model class means) used for labels ``>= C_o`` when
    ``unseen="synthesise"``; with ``unseen="skip"`` those samples are left out.
    """

    weight: torch.Tensor  # a buffer: the (normalised) classifier rows

    def __init__(
        self,
        old_weight: torch.Tensor,
        scale: float = 16.0,
        synthesised: torch.Tensor | None = None,
        unseen: str = "synthesise",
    ) -> None:
        super().__init__()
        if unseen not in ("skip", "synthesise"):
            raise ValueError(f"unseen must be 'skip' or 'synthesise', got {unseen!r}")
        weight = F.normalize(old_weight.detach(), dim=1)
        if unseen == "synthesise" and synthesised is not None and len(synthesised) > len(weight):
            weight = torch.cat([weight, F.normalize(synthesised[len(weight) :].detach(), dim=1)])
        self.register_buffer("weight", weight)
        self.scale = scale

    def forward(
        self, new_embeddings: torch.Tensor, labels: torch.Tensor, **_: object
    ) -> torch.Tensor:
        if new_embeddings.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"BCT needs equal embedding dims: new {new_embeddings.shape[1]} vs old "
                f"{self.weight.shape[1]}; train the new model with "
                f"embed_dim {self.weight.shape[1]}"
            )
        seen = labels < len(self.weight)
        if not seen.any():
            return new_embeddings.sum() * 0.0
        logits = self.scale * new_embeddings[seen] @ self.weight.T
        return F.cross_entropy(logits, labels[seen])


class L2Loss(nn.Module):
    """Feature regression ``mean ||phi_n(x) - phi_o(x)||^2`` (needs equal dims)."""

    def forward(
        self,
        new_embeddings: torch.Tensor,
        labels: torch.Tensor,
        old_embeddings: torch.Tensor,
        **_: object,
    ) -> torch.Tensor:
        _check_same_dim(new_embeddings, old_embeddings, "L2")
        return (new_embeddings - old_embeddings).pow(2).sum(1).mean()


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.alpha * grad, None


def gradient_reversal(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-alpha`` backward."""
    return _GradientReversal.apply(x, alpha)


def reversal_scale(progress: float) -> float:
    """The DANN ramp ``2 / (1 + exp(-10 p)) - 1``: 0 at the start, close to 1 at the end."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """``(classes, d)``: the mean of ``embeddings (N, d)`` over each class ``0..classes-1``
    (BCT's synthesised classifier rows, AdvBCT's boundary centres)."""
    return torch.stack([embeddings[labels == c].mean(0) for c in range(classes)])


def class_radius(distances: torch.Tensor, outlier_fence: float | None = 1.5) -> torch.Tensor:
    """A class's radius: the largest of ``distances (n,)`` (its old embeddings' distances to
    its centre) that is not an outlier by Tukey's fence ``q3 + outlier_fence * (q3 - q1)``.

    As in the AdvBCT authors' code (1.5 IQR). ``None`` gives the plain maximum, METHOD.md's
    literal reading, which fails with many images per class: the farthest of thousands
    (a mislabelled or odd image) sits about as far from the centre as a unit vector can be,
    so the boundary holds every new embedding and the boundary loss is zero.
    """
    if outlier_fence is None:
        return distances.max()
    q1, q3 = torch.quantile(distances, torch.tensor([0.25, 0.75], dtype=distances.dtype))
    return distances[distances <= q3 + outlier_fence * (q3 - q1)].max()


def class_radii(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    centres: torch.Tensor,
    outlier_fence: float | None = 1.5,
) -> torch.Tensor:
    """``(C,)``: :func:`class_radius` of each class ``c < C`` of ``centres (C, d)``, from the
    distances of its ``embeddings (N, d)`` (labels ``(N,)``) to its centre."""
    return torch.stack(
        [
            class_radius((embeddings[labels == c] - centre).norm(dim=1), outlier_fence)
            for c, centre in enumerate(centres)
        ]
    )


class ElasticBoundaryLoss(nn.Module):
    """AdvBCT's elastic boundary around each old class centre.

    ``centres (C, d)``: mean old embedding per class; ``radii (C,)``: max distance of the
    class's old embeddings to its centre; ``r0``: reference radius (default: mean radius).
    Boundary ``b_c = r_c + e_c`` if ``r_c < r0`` else ``r_c - e_c``, with the learnable
    margin ``e_c = |r_c - r0| * sigmoid(w_c)``. Loss: ``relu(||n - mu_y|| - b_y)`` averaged
    over the embeddings outside their boundary (zero when there are none), as the authors'
    code does: a mean over the whole batch would shrink the push as more embeddings get in.
    Labels ``>= C`` (classes the old model never saw) have no boundary and add nothing.
    """

    centres: torch.Tensor  # buffers
    radii: torch.Tensor

    def __init__(self, centres: torch.Tensor, radii: torch.Tensor, r0: float | None = None) -> None:
        super().__init__()
        self.register_buffer("centres", centres.detach().clone())
        self.register_buffer("radii", radii.detach().clone())
        self.r0 = float(radii.mean()) if r0 is None else float(r0)
        self.margin_logits = nn.Parameter(torch.zeros(len(radii)))

    def boundaries(self) -> torch.Tensor:
        """``(C,)`` current boundary radius per class."""
        elastic = (self.radii - self.r0).abs() * torch.sigmoid(self.margin_logits)
        return torch.where(self.radii < self.r0, self.radii + elastic, self.radii - elastic)

    def forward(
        self, new_embeddings: torch.Tensor, labels: torch.Tensor, **_: object
    ) -> torch.Tensor:
        _check_same_dim(new_embeddings, self.centres, "the elastic boundary")
        seen = labels < len(self.centres)
        classes = labels.clamp(max=len(self.centres) - 1)  # any row: unseen ones are masked
        distance = (new_embeddings - self.centres[classes]).norm(dim=1)
        excess = F.relu(distance - self.boundaries()[classes]) * seen
        return excess.sum() / (excess > 0).sum().clamp(min=1)


class AdvBCTLoss(nn.Module):
    """``lambda_adv * L_adv + lambda_eb * L_eb`` (Pan et al., CVPR 2023).

    L_adv: a discriminator tells old from new embeddings; the new embeddings reach it
    through a gradient-reversal layer of scale ``reversal_scale(progress)``, so the new
    model learns to make them indistinguishable from old ones. As in the authors' code,
    L_adv's weight falls linearly over training (``lambda_adv * (1 - progress)``, their
    per-epoch ``(E - e + 1) / E``) while the reversal scale ramps up.
    """

    def __init__(
        self,
        centres: torch.Tensor,
        radii: torch.Tensor,
        lambda_adv: float = 0.1,
        lambda_eb: float = 1.0,
        r0: float | None = None,
    ) -> None:
        super().__init__()
        self.discriminator = Discriminator(centres.shape[1])
        self.boundary = ElasticBoundaryLoss(centres, radii, r0)
        self.lambda_adv, self.lambda_eb = lambda_adv, lambda_eb

    def forward(
        self,
        new_embeddings: torch.Tensor,
        labels: torch.Tensor,
        old_embeddings: torch.Tensor,
        progress: float,
        **_: object,
    ) -> torch.Tensor:
        _check_same_dim(new_embeddings, old_embeddings, "AdvBCT")
        reversed_new = gradient_reversal(new_embeddings, reversal_scale(progress))
        logits = self.discriminator(torch.cat([old_embeddings.detach(), reversed_new]))
        domain = torch.cat([torch.zeros(len(old_embeddings)), torch.ones(len(new_embeddings))])
        adv = F.cross_entropy(logits, domain.long().to(logits.device))
        adv_weight = self.lambda_adv * (1.0 - progress)
        return adv_weight * adv + self.lambda_eb * self.boundary(new_embeddings, labels)


class RACTLoss(nn.Module):
    """Hot-Refresh's regression-alleviating loss.

    For anchor ``n_i`` the logits are ``[<n_i, o_i>, <n_i, o_j>, <n_i, n_j>] / tau`` over
    ``j`` of other classes; cross-entropy towards the first (new-to-old positive).
    """

    def __init__(self, tau: float = 0.05) -> None:
        super().__init__()
        self.tau = tau

    def forward(
        self,
        new_embeddings: torch.Tensor,
        labels: torch.Tensor,
        old_embeddings: torch.Tensor,
        **_: object,
    ) -> torch.Tensor:
        _check_same_dim(new_embeddings, old_embeddings, "RACT")
        old = old_embeddings.detach()
        negative = labels[:, None] != labels[None]
        positive = (new_embeddings * old).sum(1, keepdim=True)
        to_old = (new_embeddings @ old.T).masked_fill(~negative, float("-inf"))
        to_new = (new_embeddings @ new_embeddings.T).masked_fill(~negative, float("-inf"))
        logits = torch.cat([positive, to_old, to_new], dim=1) / self.tau
        return F.cross_entropy(
            logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        )


def regression_loss(transformed: torch.Tensor, old_embeddings: torch.Tensor) -> torch.Tensor:
    """L_rt = ``mean ||psi(phi_n(x)) - phi_o(x)||^2`` (``transformed`` already unit)."""
    _check_same_dim(transformed, old_embeddings, "the reverse transformation")
    return (transformed - old_embeddings.detach()).pow(2).sum(1).mean()


class MetricCompatibleLoss(nn.Module):
    """Contrastive loss over both parts of a backfilling gallery in ONE softmax.

    For anchor ``i``: candidates are every old embedding ``o_j`` (logit ``<r_i, o_j>/tau``,
    ``r_i = psi(phi_n(x_i))``) and every other new embedding ``n_j`` (logit
    ``<n_i, n_j>/tau``). Positives are the candidates of the anchor's class:
    ``L = -1/|P_i| sum_{p in P_i} log softmax_p``, averaged over anchors. A positive of
    either part must outscore a negative of either part: what a correct merge needs.
    """

    def __init__(self, tau: float = 0.1) -> None:
        super().__init__()
        self.tau = tau

    def forward(
        self,
        transformed: torch.Tensor,
        labels: torch.Tensor,
        new_embeddings: torch.Tensor,
        old_embeddings: torch.Tensor,
    ) -> torch.Tensor:
        _check_same_dim(transformed, old_embeddings, "the metric-compatible loss")
        b = len(labels)
        self_mask = torch.eye(b, dtype=torch.bool, device=labels.device)
        to_old = transformed @ old_embeddings.detach().T
        to_new = (new_embeddings @ new_embeddings.T).masked_fill(self_mask, float("-inf"))
        logits = torch.cat([to_old, to_new], dim=1) / self.tau
        same = labels[:, None] == labels[None]
        positive = torch.cat([same, same & ~self_mask], dim=1)
        log_prob = logits.log_softmax(dim=1).masked_fill(~positive, 0.0)
        return (-log_prob.sum(1) / positive.sum(1)).mean()


def _check_same_dim(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{what} compares {a.shape[1]}-dim with {b.shape[1]}-dim embeddings: it needs equal "
            "embedding dims (train the new model with the old model's --embed-dim)"
        )
