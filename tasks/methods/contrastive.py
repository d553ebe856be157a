"""Contrastive loss (Hadsell et al., "Dimensionality Reduction by Learning an Invariant Mapping",
CVPR 2006): [d - m_pos]_+ for positive pairs, [m_neg - d]_+ for negative pairs, margins 0 and 1.

Variant ``original`` (default; ooDML's ``criteria/contrastive.py`` with its default miner,
``batchminer/distance.py``): the pairs are the (a, p) and (a, n) of the triplets T a miner returns
(:class:`tasks.methods.distance_weighted.DistanceWeightedSampler`: one per anchor, the positive being
the anchor itself for a class alone in the batch), with ``d(u, v) = |u - v + 1e-6|`` (the eps of
``torch.nn.PairwiseDistance``), each term averaged over all triplets:

    L = 1/|T| sum_T [d(a, p) - m_pos]_+  +  1/|T| sum_T [m_neg - d(a, n)]_+      (0 when T is empty)

Variant ``pml`` (pytorch-metric-learning's ``ContrastiveLoss``): all pairs of the batch, each of the
two terms averaged over its non-zero pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import Tensor

from tasks.methods.base import LibraryLoss, Method
from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.miners import MinedLoss, Triplets


class Contrastive(MinedLoss[Triplets]):
    """ooDML's contrastive loss over the pairs of the triplets ``miner(embeddings, labels)`` returns."""

    def __init__(
        self,
        *,
        pos_margin: float,
        neg_margin: float,
        miner: Callable[[Tensor, Tensor], Triplets] | None = None,
    ) -> None:
        super().__init__(miner if miner is not None else DistanceWeightedSampler())
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin

    def compute_loss(self, embeddings: Tensor, labels: Tensor, triplets: Triplets) -> Tensor:
        a, p, n = triplets
        if len(a) == 0:
            return embeddings.sum() * 0.0
        d_ap = F.pairwise_distance(embeddings[a], embeddings[p], eps=1e-6)
        d_an = F.pairwise_distance(embeddings[a], embeddings[n], eps=1e-6)
        return F.relu(d_ap - self.pos_margin).mean() + F.relu(self.neg_margin - d_an).mean()


class PMLContrastive(LibraryLoss):
    """pytorch-metric-learning's contrastive loss over all pairs (variant ``pml``)."""

    def __init__(self, *, pos_margin: float, neg_margin: float) -> None:
        super().__init__()
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.loss = losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)


def build(
    num_classes: int, embedding_dim: int, *, pos_margin: float, neg_margin: float, variant: str = "original"
) -> Method:
    cls = PMLContrastive if variant == "pml" else Contrastive
    return cls(pos_margin=pos_margin, neg_margin=neg_margin)
