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

from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.miners import MinedLoss, Triplets

# (pos_t, neg_t, nu * sum_t beta_t) -> the loss: how a variant averages the triplets' terms
Reducer = Callable[[Tensor, Tensor, Tensor], Tensor]


def per_active_triplet(pos: Tensor, neg: Tensor, beta_term: Tensor) -> Tensor:
    """Variant ``original``: sum_t (pos_t + neg_t) / K + nu * sum_t beta_t, K the triplets with a
    non-zero term."""
    active = ((pos > 0) | (neg > 0)).sum()
    return (pos + neg).sum() / active.clamp_min(1) + beta_term


def per_active_term(pos: Tensor, neg: Tensor, beta_term: Tensor) -> Tensor:
    """Variant ``wu``: (sum_t (pos_t + neg_t) + nu * sum_t beta_t) / K', K' the non-zero pair terms."""
    active = (pos > 0).sum() + (neg > 0).sum()
    return ((pos + neg).sum() + beta_term) / active.clamp_min(1)


REDUCERS: dict[str, Reducer] = {"original": per_active_triplet, "wu": per_active_term}


class MarginLoss(MinedLoss[Triplets]):
    """Margin loss over the triplets its miner returns; ``reduction`` is the variant (``original`` or
    ``wu``, see the module docstring). ``sampler`` is the miner under Wu et al.'s name, as a keyword and
    an attribute."""

    def __init__(
        self,
        num_classes: int,
        *,
        beta: float,
        margin: float,
        nu: float,
        loss_lr: float,
        sampler: Callable[[Tensor, Tensor], Triplets],
        class_specific_beta: bool = True,
        reduction: str = "original",
    ) -> None:
        if reduction not in REDUCERS:
            raise ValueError(f"reduction must be one of {tuple(REDUCERS)}, got {reduction!r}")
        super().__init__(sampler, loss_lr)
        self.beta = nn.Parameter(torch.full((num_classes if class_specific_beta else 1,), float(beta)))
        self.margin = margin
        self.nu = nu
        self.reduction = reduction

    @property
    def sampler(self) -> Callable[[Tensor, Tensor], Triplets]:
        return self.miner

    @sampler.setter
    def sampler(self, miner: Callable[[Tensor, Tensor], Triplets]) -> None:
        self.miner = miner

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
        return REDUCERS[self.reduction](pos, neg, self.nu * beta.sum())


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
