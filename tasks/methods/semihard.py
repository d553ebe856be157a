"""Semi-hard triplet mining (Schroff et al., "FaceNet", CVPR 2015) as the ooDML code draws it
(``batchminer/semihard.py`` of Milbich, Roth et al., NeurIPS 2021).

One triplet per anchor: a positive p drawn uniformly among the anchor's other same-class samples, then
a negative drawn uniformly among the semi-hard ones, ``d(a, p) < d(a, n) < d(a, p) + margin`` with d the
plain (not squared) Euclidean distance ``sqrt(max(|a|² + |b|² - 2ab, 0))``, or uniformly among all
negatives when none is semi-hard. ooDML fails on an anchor without another same-class sample or
without a negative; we skip such anchors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tasks.methods.distances import at_least_float32, pairwise_distances
from tasks.methods.miners import Miner, Triplets


class SemihardMiner(Miner[Triplets]):
    """One semi-hard (anchor, positive, negative) triplet per anchor."""

    def __init__(self, margin: float) -> None:
        self.margin = margin

    @torch.no_grad()
    def mine(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        x = embeddings.detach()
        d = pairwise_distances(at_least_float32(x))
        same = labels[:, None] == labels[None, :]
        others = same.clone()
        others.fill_diagonal_(False)
        negative = ~same
        anchors = (others.any(1) & negative.any(1)).nonzero().squeeze(1)
        if len(anchors) == 0:
            return anchors, anchors, anchors
        positives = torch.multinomial(others[anchors].float(), 1).squeeze(1)
        d_a = d[anchors]
        d_ap = d_a.gather(1, positives[:, None])
        semihard = negative[anchors] & (d_a > d_ap) & (d_a < d_ap + self.margin)
        candidates = torch.where(semihard.any(1, keepdim=True), semihard, negative[anchors])
        negatives = torch.multinomial(candidates.float(), 1).squeeze(1)
        return anchors, positives, negatives
