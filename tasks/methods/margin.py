"""Margin loss with distance-weighted sampling (Wu et al., "Sampling Matters in Deep Embedding
Learning", ICCV 2017), as ooDML trains it: learnable class-specific boundary beta (initial 1.2,
learning rate 5e-4), margin 0.2, no beta regularisation (nu = 0).

For each sampled triplet, with beta the anchor class's boundary,

    l = [d(a, p) - beta + margin]_+ + [beta - d(a, n) + margin]_+

summed with ``nu * sum(beta)`` and divided by the number of pairs with a non-zero term (Wu et al.).
The ooDML code divides by the number of triplets with a non-zero term instead, a side effect of
adding boolean tensors in PyTorch; we keep the paper's count.
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


class MarginLoss(Method):
    """Margin loss over the triplets ``sampler(embeddings, labels)`` returns."""

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
    ) -> None:
        super().__init__(loss_lr)
        self.beta = nn.Parameter(torch.full((num_classes if class_specific_beta else 1,), float(beta)))
        self.margin = margin
        self.nu = nu
        self.sampler = sampler

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        a, p, n = self.sampler(embeddings, labels)
        d_ap = ((embeddings[a] - embeddings[p]).pow(2).sum(1) + 1e-8).sqrt()
        d_an = ((embeddings[a] - embeddings[n]).pow(2).sum(1) + 1e-8).sqrt()
        beta = self.beta[labels[a]] if len(self.beta) > 1 else self.beta.expand(len(a))
        pos = F.relu(d_ap - beta + self.margin)
        neg = F.relu(beta - d_an + self.margin)
        active = (pos > 0).sum() + (neg > 0).sum()
        return (pos.sum() + neg.sum() + self.nu * beta.sum()) / active.clamp_min(1)


def build(
    num_classes: int, embedding_dim: int, *, beta: float, margin: float, nu: float, loss_lr: float
) -> MarginLoss:
    return MarginLoss(
        num_classes, beta=beta, margin=margin, nu=nu, loss_lr=loss_lr, sampler=DistanceWeightedSampler()
    )


SPEC = MethodSpec(
    name="margin",
    build=build,
    hyperparameters={
        "beta": Hyperparameter(1.2, 0.5, 1.6),
        "margin": Hyperparameter(0.2, 0.05, 0.5),
        "nu": Hyperparameter(0.0, 0.0, 0.1),
        "loss_lr": Hyperparameter(5e-4, 1e-5, 1e-2, log=True),
    },
    description="Margin loss + distance-weighted sampling: Wu et al., Sampling Matters in Deep Embedding "
    "Learning, ICCV 2017; settings of Milbich, Roth et al., NeurIPS 2021 (ooDML).",
)
