"""Margin loss with distance-weighted sampling (Wu et al., "Sampling Matters in Deep Embedding
Learning", ICCV 2017), as ooDML trains it (``criteria/margin.py`` with ``batchminer/distance.py`` of
Milbich, Roth et al., NeurIPS 2021): learnable class-specific boundary beta (initial 1.2, learning
rate 5e-4), margin 0.2, no beta regularisation (nu = 0).

For the mined triplets t = (a, p, n), with beta_t the anchor class's boundary and
``d(u, v) = sqrt(|u - v|² + 1e-8)``,

    pos_t = [d(a, p) - beta_t + margin]_+        neg_t = [beta_t - d(a, n) + margin]_+

Variant ``original`` (default, ooDML): with K the number of triplets with pos_t > 0 or neg_t > 0 (the
ooDML code adds two boolean tensors, which in PyTorch is a logical or),

    L = sum_t (pos_t + neg_t) / K    (the plain sum, i.e. 0, when K = 0)   + nu * sum_t beta_t

ooDML adds its beta term after the division, but under an undefined name, so any nu != 0 fails there;
we add ``nu * sum_t beta_t`` as written. No triplets give 0.

Variant ``wu`` (Wu et al.'s code, where comparisons are numbers and add up): with K' the number of
non-zero pair terms (pos_t > 0 and neg_t > 0 counted apart),

    L = (sum_t (pos_t + neg_t) + nu * sum_t beta_t) / max(K', 1)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.methods.base import Hyperparameter, Method, MethodSpec
from tasks.methods.distance_weighted import DistanceWeightedSampler

# (embeddings, labels) -> (anchors, positives, negatives) index tensors
Sampler = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
Triplets = tuple[Tensor, Tensor, Tensor]

REDUCTIONS = ("original", "wu")


class MarginLoss(Method):
    """Margin loss over the triplets ``sampler(embeddings, labels)`` returns; ``reduction`` is the
    variant (``original`` or ``wu``, see the module docstring)."""

    def __init__(
        self,
        num_classes: int,
        *,
        beta: float,
        margin: float,
        nu: float,
        loss_lr: float,
        sampler: Sampler,
        class_specific_beta: bool = True,
        reduction: str = "original",
    ) -> None:
        super().__init__(loss_lr)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.beta = nn.Parameter(torch.full((num_classes if class_specific_beta else 1,), float(beta)))
        self.margin = margin
        self.nu = nu
        self.sampler = sampler
        self.reduction = reduction

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.compute_loss(embeddings, labels, self.sampler(embeddings, labels))

    def compute_loss(self, embeddings: Tensor, labels: Tensor, triplets: Triplets) -> Tensor:
        """The loss over given (anchors, positives, negatives) index tensors."""
        a, p, n = triplets
        if len(a) == 0:
            return embeddings.sum() * 0.0 + self.beta.sum() * 0.0
        d_ap = ((embeddings[a] - embeddings[p]).pow(2).sum(1) + 1e-8).sqrt()
        d_an = ((embeddings[a] - embeddings[n]).pow(2).sum(1) + 1e-8).sqrt()
        beta = self.beta[labels[a]] if len(self.beta) > 1 else self.beta.expand(len(a))
        beta = beta.to(d_ap.dtype)
        pos = F.relu(d_ap - beta + self.margin)
        neg = F.relu(beta - d_an + self.margin)
        total = (pos + neg).sum()
        if self.reduction == "wu":
            active = (pos > 0).sum() + (neg > 0).sum()
            return (total + self.nu * beta.sum()) / active.clamp_min(1)
        active = ((pos > 0) | (neg > 0)).sum()
        return total / active.clamp_min(1) + self.nu * beta.sum()


def build(
    num_classes: int,
    embedding_dim: int,
    *,
    beta: float,
    margin: float,
    nu: float,
    loss_lr: float,
    variant: str = "original",
) -> MarginLoss:
    return MarginLoss(
        num_classes,
        beta=beta,
        margin=margin,
        nu=nu,
        loss_lr=loss_lr,
        sampler=DistanceWeightedSampler(),
        reduction=variant,
    )


BETA = Hyperparameter(1.2, 0.5, 1.6)
LOSS_LR = Hyperparameter(5e-4, 1e-5, 1e-2, log=True)


def margin_hyperparameters(
    beta: Hyperparameter = BETA, loss_lr: Hyperparameter = LOSS_LR
) -> dict[str, Hyperparameter]:
    """The margin loss's hyperparameters (at its ooDML values by default), for every method built on it."""
    return {
        "beta": beta,
        "margin": Hyperparameter(0.2, 0.05, 0.5),
        "nu": Hyperparameter(0.0, 0.0, 0.1),
        "loss_lr": loss_lr,
    }


SPEC = MethodSpec(
    name="margin",
    build=build,
    hyperparameters=margin_hyperparameters(),
    margin_beta="beta",
    description="Margin loss + distance-weighted sampling: Wu et al., Sampling Matters in Deep Embedding "
    "Learning, ICCV 2017; settings of Milbich, Roth et al., NeurIPS 2021 (ooDML).",
    variants={
        "original": "ooDML criteria/margin.py: sum over triplets / number of triplets with a non-zero term",
        "wu": "Wu et al.'s code: (sum + nu * sum beta) / number of non-zero pair terms",
    },
)
