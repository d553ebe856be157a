"""Multi-similarity loss with its pair mining (Wang et al., "Multi-Similarity Loss with General Pair
Weighting for Deep Metric Learning", CVPR 2019); ooDML: alpha (positive weight) 2, beta (negative
weight) 40, base (threshold lambda, positives and negatives alike) 0.5, epsilon (mining margin) 0.1.

Variant ``original`` (default; ooDML's ``criteria/multisimilarity.py``, cosine mode). With
S_ij = <x_i, x_j> (embeddings as given), for each anchor j:

    P(j) = {i : y_i = y_j, S_ij - epsilon < max_{k: y_k != y_j} S_jk}     (i = j included if it holds)
    N(j) = {i : y_i != y_j, S_ij + epsilon > min_{k != j: y_k = y_j} S_jk}

(mined by :class:`MultiSimilarityMiner`; ooDML fails on an anchor without a positive or a negative, whose
bound we take as +inf / -inf, i.e. nothing is mined against it), and

    L = 1/|A+| sum_{j in A+} 1/alpha softplus( logsumexp_{i in P(j)} -alpha (S_ij - base) )
      + 1/|A-| sum_{j in A-} 1/beta  softplus( logsumexp_{i in N(j)}  beta (S_ij - base) )

with A+ (A-) the anchors with a non-empty P(j) (N(j)); a term whose A is empty is the constant
softplus(0) / weight, as in ooDML. (ooDML finds the anchors with entries as the columns whose masked
max + min is non-zero, which differs from "non-empty" only on exact ties.)

Variant ``pml`` (pytorch-metric-learning's ``MultiSimilarityLoss`` + ``MultiSimilarityMiner``): the
paper's mean over all anchors of the sum of the two terms, the diagonal never a positive.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses, miners
from torch import Tensor

from tasks.methods.base import Method
from tasks.methods.miners import MinedLoss, Miner, Pairs


class MultiSimilarityMiner(Miner[Pairs]):
    """ooDML's multi-similarity pair mining: ``mine(embeddings, labels)`` -> index tensors
    (anchors, positives, anchors, negatives), the anchor being the column j of the module docstring."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    @torch.no_grad()
    def mine(self, embeddings: Tensor, labels: Tensor) -> Pairs:
        s = embeddings.detach() @ embeddings.detach().T
        same = labels[:, None] == labels[None, :]
        others = same.clone()
        others.fill_diagonal_(False)
        # bounds of anchor j come from row j; the masks compare S_ij with the bound of column j
        pos_bound = s.masked_fill(~others, float("inf")).amin(1)
        neg_bound = s.masked_fill(same, float("-inf")).amax(1)
        pos_mask = same & (s - self.epsilon < neg_bound[None, :])
        neg_mask = ~same & (s + self.epsilon > pos_bound[None, :])
        positives, pos_anchors = pos_mask.nonzero(as_tuple=True)
        negatives, neg_anchors = neg_mask.nonzero(as_tuple=True)
        return pos_anchors, positives, neg_anchors, negatives


def _anchor_term(weighted: Tensor, mask: Tensor, weight: float) -> Tensor:
    """1/weight * mean over the columns with entries of softplus(masked logsumexp over the column)."""
    columns = mask.any(0)
    if not columns.any():
        return weighted.sum() * 0.0 + math.log(2.0) / weight
    lse = weighted[:, columns].masked_fill(~mask[:, columns], float("-inf")).logsumexp(0)
    return F.softplus(lse).mean() / weight


class MultiSimilarity(MinedLoss[Pairs]):
    """ooDML's multi-similarity loss over the pairs ``miner(embeddings, labels)`` returns."""

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        base: float,
        epsilon: float,
        miner: Callable[[Tensor, Tensor], Pairs] | None = None,
    ) -> None:
        super().__init__(miner if miner is not None else MultiSimilarityMiner(epsilon))
        self.alpha = alpha
        self.beta = beta
        self.base = base
        self.epsilon = epsilon

    def compute_loss(self, embeddings: Tensor, labels: Tensor, pairs: Pairs) -> Tensor:
        pos_anchors, positives, neg_anchors, negatives = pairs
        s = embeddings @ embeddings.T
        pos_mask = torch.zeros_like(s, dtype=torch.bool)
        pos_mask[positives, pos_anchors] = True
        neg_mask = torch.zeros_like(s, dtype=torch.bool)
        neg_mask[negatives, neg_anchors] = True
        pos = _anchor_term(-self.alpha * (s - self.base), pos_mask, self.alpha)
        neg = _anchor_term(self.beta * (s - self.base), neg_mask, self.beta)
        return pos + neg


class PMLMultiSimilarity(Method):
    """pytorch-metric-learning's multi-similarity loss and miner (variant ``pml``)."""

    def __init__(self, *, alpha: float, beta: float, base: float, epsilon: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.base = base
        self.epsilon = epsilon
        self.loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
        self.miner = miners.MultiSimilarityMiner(epsilon=epsilon)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def build(
    num_classes: int,
    embedding_dim: int,
    *,
    alpha: float,
    beta: float,
    base: float,
    epsilon: float,
    variant: str = "original",
) -> Method:
    cls = PMLMultiSimilarity if variant == "pml" else MultiSimilarity
    return cls(alpha=alpha, beta=beta, base=base, epsilon=epsilon)
