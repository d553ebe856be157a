"""ρ-distance sampling (Roth et al., "Revisiting Training Strategies and Generalization Performance in
Deep Metric Learning", ICML 2020): distance-weighted sampling in which, with probability ρ, a triplet's
negative is replaced by a positive, so that same-class samples are pushed apart and the embedding
keeps more directions of variance.

As in the ooDML reference sampler, a swapped triplet becomes (anchor, anchor, positive): the positive
takes the negative's role and the anchor itself fills the positive slot (distance 0, which costs the
margin loss nothing while beta > margin). Only anchors with another same-class sample in the batch
yield triplets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tasks.methods.distance_weighted import DistanceWeightedSampler


class RhoDistanceSampler(DistanceWeightedSampler):
    """Distance-weighted triplets; each one swapped to (a, a, p) with probability ``rho``."""

    def __init__(self, rho: float, lower_cutoff: float = 0.5, upper_cutoff: float | None = None) -> None:
        super().__init__(lower_cutoff, upper_cutoff)
        self.rho = rho

    @torch.no_grad()
    def __call__(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        anchors, positives, negatives = super().__call__(embeddings, labels)
        keep = positives != anchors
        anchors, positives, negatives = anchors[keep], positives[keep], negatives[keep]
        swap = torch.rand(len(anchors), device=anchors.device) < self.rho
        return anchors, torch.where(swap, anchors, positives), torch.where(swap, positives, negatives)
