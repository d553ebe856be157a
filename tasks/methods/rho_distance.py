"""ρ-distance sampling (Roth et al., "Revisiting Training Strategies and Generalization Performance in
Deep Metric Learning", ICML 2020), as the ooDML code draws it (``batchminer/rho_distance.py``):
distance-weighted sampling in which, with probability ρ, a triplet's negative is replaced by a
positive, so that same-class samples are pushed apart and the embedding keeps more directions of
variance.

Which tuples, as in ooDML: only anchors with another same-class sample in the batch yield a triplet
(one each). With probability 1 - ρ it is (anchor, p, n): p uniform among the anchor's other same-class
samples, n drawn ∝ q(d)^-1 as in :mod:`tasks.methods.distance_weighted` (distances clamped below at
0.5; ooDML also floors the squared distance at 1e-4, which the 0.5 cut-off makes moot). With
probability ρ it is swapped to (anchor, anchor, p), p uniform among the other same-class samples: the
positive takes the negative's role and the anchor itself fills the positive slot (distance ~0, which
costs the margin loss nothing while beta > margin). ooDML fails on an anchor with no negative; we
skip it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.miners import Triplets


class RhoDistanceSampler(DistanceWeightedSampler):
    """Distance-weighted triplets; each one swapped to (a, a, p) with probability ``rho``."""

    def __init__(self, rho: float, lower_cutoff: float = 0.5, upper_cutoff: float | None = None) -> None:
        super().__init__(lower_cutoff, upper_cutoff)
        self.rho = rho

    @torch.no_grad()
    def mine(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        anchors, positives, negatives = super().mine(embeddings, labels)
        keep = positives != anchors
        anchors, positives, negatives = anchors[keep], positives[keep], negatives[keep]
        swap = torch.rand(len(anchors), device=anchors.device) < self.rho
        return anchors, torch.where(swap, anchors, positives), torch.where(swap, positives, negatives)
