"""Triplet loss with semi-hard negatives (Schroff et al., "FaceNet: A Unified Embedding for Face
Recognition and Clustering", CVPR 2015), margin 0.2.

Variant ``original`` (default; ooDML's ``criteria/triplet.py`` with ``batchminer/semihard.py``): one
triplet per anchor from :class:`tasks.methods.semihard.SemihardMiner` (semi-hard on plain distances),
and the loss on squared Euclidean distances, averaged over the triplets T:

    L = 1/|T| sum_{(a,p,n) in T} [ |a - p|² - |a - n|² + margin ]_+      (0 when T is empty)

Variant ``pml`` (pytorch-metric-learning's ``TripletMarginLoss`` + ``TripletMarginMiner(semihard)``):
every triplet of the batch with d(a, p) < d(a, n) <= d(a, p) + margin, the loss
``[d(a, p) - d(a, n) + margin]_+`` on plain distances, averaged over its non-zero terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from pytorch_metric_learning import losses, miners
from torch import Tensor

from tasks.methods.base import Method
from tasks.methods.miners import MinedLoss, Triplets
from tasks.methods.semihard import SemihardMiner


class Triplet(MinedLoss[Triplets]):
    """ooDML's triplet loss over the triplets ``miner(embeddings, labels)`` returns."""

    def __init__(self, *, margin: float, miner: Callable[[Tensor, Tensor], Triplets] | None = None) -> None:
        super().__init__(miner if miner is not None else SemihardMiner(margin))
        self.margin = margin

    def compute_loss(self, embeddings: Tensor, labels: Tensor, triplets: Triplets) -> Tensor:
        a, p, n = triplets
        if len(a) == 0:
            return embeddings.sum() * 0.0
        d_ap = (embeddings[a] - embeddings[p]).pow(2).sum(1)
        d_an = (embeddings[a] - embeddings[n]).pow(2).sum(1)
        return F.relu(d_ap - d_an + self.margin).mean()


class PMLTriplet(Method):
    """pytorch-metric-learning's semi-hard triplet loss (variant ``pml``)."""

    def __init__(self, *, margin: float) -> None:
        super().__init__()
        self.margin = margin
        self.loss = losses.TripletMarginLoss(margin=margin)
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def build(num_classes: int, embedding_dim: int, *, margin: float, variant: str = "original") -> Method:
    return PMLTriplet(margin=margin) if variant == "pml" else Triplet(margin=margin)
