"""AdvBCT (Pan et al., CVPR 2023): an adversarial term and an elastic boundary per old class.

``L = CE + weight * (lambda_adv * L_adv + lambda_eb * L_eb)`` (METHOD.md section 3):

- L_adv: a discriminator tells old from new embeddings; the new embeddings reach it through
  a gradient-reversal layer of scale ``alpha = 2 / (1 + exp(-10 p)) - 1`` (the DANN ramp,
  ``p`` = training progress), so the new model learns to make them indistinguishable from
  old ones. As in the authors' code, L_adv's weight falls linearly over training.
- L_eb: each old class ``c`` has a centre ``mu_c`` (mean old embedding) and a radius
  ``r_c`` (:func:`class_radius`: the farthest old embedding that is not an outlier, as in
  the authors' code); a learnable margin moves the boundary towards the reference radius
  ``r_0`` (default: the mean class radius, the paper's per-dataset constant made
  data-driven), and new embeddings outside their class's boundary are pulled in.

Options: ``lambda_adv`` 0.1, ``lambda_eb`` 1, ``outlier_fence`` 1.5, ``r0`` (the mean
radius), and ``unseen``: ``synthesise`` (classes the old model never saw get a boundary
too, around the old model's embeddings of their images) or ``skip`` (the authors' choice).
Where these differ from the paper and the authors' code, and the grids behind them:
docs/choices.md. Needs ``d_n = d_o``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.embeddings import check_same_dim, reference_embeddings
from .registry import (
    COMPATIBLE_STYLE,
    COMPATIBLE_WEIGHTS,
    CompatibleTraining,
    Method,
    compatible_parts,
    register,
)

__all__ = [
    "AdvBCTLoss",
    "Discriminator",
    "ElasticBoundaryLoss",
    "class_radii",
    "class_radius",
    "gradient_reversal",
    "reversal_scale",
]


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
    return distances[distances <= q3 + outlier_fence * (q3 - q1)].max()  # below the fence


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
        elastic = (self.radii - self.r0).abs() * torch.sigmoid(self.margin_logits)  # (C,) e_c
        return torch.where(self.radii < self.r0, self.radii + elastic, self.radii - elastic)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``embeddings (B, d)`` new, ``labels (B,)`` -> the mean excess over the boundary."""
        check_same_dim(embeddings, self.centres, "the elastic boundary")
        seen = labels < len(self.centres)  # (B,): classes with a boundary
        classes = labels.clamp(max=len(self.centres) - 1)  # any row: unseen ones are masked
        distance = (embeddings - self.centres[classes]).norm(dim=1)  # (B,) ||n - mu_y||
        excess = F.relu(distance - self.boundaries()[classes]) * seen  # (B,) outside b_y
        return excess.sum() / (excess > 0).sum().clamp(min=1)  # mean over those outside


class Discriminator(nn.Module):
    """AdvBCT's domain classifier: Linear-BN-ReLU-Linear, ``(B, d) -> (B, 2)`` (old vs new)."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)


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
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        progress: float = 0.0,
    ) -> torch.Tensor:
        old = reference_embeddings(embeddings, ref_emb, "AdvBCT").detach()  # (B, d)
        reversed_new = gradient_reversal(embeddings, reversal_scale(progress))  # (B, d)
        logits = self.discriminator(torch.cat([old, reversed_new]))  # (2B, 2)
        domain = torch.cat([torch.zeros(len(old)), torch.ones(len(embeddings))])  # 0: old
        adv = F.cross_entropy(logits, domain.long().to(logits.device))  # L_adv
        adv_weight = self.lambda_adv * (1.0 - progress)  # falls linearly over training
        return adv_weight * adv + self.lambda_eb * self.boundary(embeddings, labels)


def _advbct_loss(training: CompatibleTraining, options: dict) -> nn.Module:
    options = dict(options)
    fence, unseen = options.pop("outlier_fence"), options.pop("unseen")
    if unseen not in ("skip", "synthesise"):
        raise ValueError(f"AdvBCT's unseen must be 'skip' or 'synthesise', got {unseen!r}")
    centres = training.class_centres()  # (C, d): the old model's class means
    bounded = centres if unseen == "synthesise" else centres[: training.old_classes]
    radii = class_radii(training.old_embeddings, training.labels, bounded, fence)
    return AdvBCTLoss(bounded, radii, **options)


register(
    Method(
        name="advbct",
        family="compatible",
        label="AdvBCT",
        style={"color": "#882255", "marker": "D", **COMPATIBLE_STYLE},
        parts=compatible_parts("advbct"),
        models=("old", "advbct"),
        loss=_advbct_loss,
        loss_options={
            "weight": 1.0,
            "lambda_adv": 0.1,
            "lambda_eb": 1.0,
            "outlier_fence": 1.5,
            "unseen": "synthesise",
        },
        search_space={
            "weight": COMPATIBLE_WEIGHTS,
            "lambda_adv": (0.03, 0.1, 0.3),
            "unseen": ("synthesise", "skip"),
        },
    )
)
