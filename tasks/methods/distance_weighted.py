"""Distance-weighted sampling (Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017), as
the ooDML code draws it (``batchminer/distance.py`` of Milbich, Roth et al., NeurIPS 2021, which is the
default miner of its margin and contrastive losses).

Negatives are drawn with probability proportional to ``q(d)^-1``, where

    q(d) ∝ d^(n-2) (1 - d^2/4)^((n-3)/2)

is the density of pairwise distances between points uniform on the unit sphere in R^n, and d the
Euclidean distance clamped below at ``lower_cutoff`` (0.5; ``d = sqrt(max(|a|² + |b|² - 2ab, 0))``),
which bounds the weights: the paper's ``min(λ, q(d)^-1)``. Same-class samples have weight 0.

Which tuples, as in the ooDML miner: every anchor yields exactly one triplet (anchor, positive,
negative), the positive drawn uniformly among the anchor's other same-class samples (the anchor itself
when its class has no other sample in the batch), the negative drawn ∝ q(d)^-1. The ooDML miner fails
on an anchor with no negative at all (a batch of one class); we skip such anchors. Its upper cut-off
(1.4 in Wu et al.'s code) is switched off, as ooDML's authors found it slightly worse; ``upper_cutoff``
restores Wu et al.'s rule (an anchor whose negatives all lie beyond it draws uniformly, as in their
code). The ooDML code takes ``log(1 - d²/4)`` unclamped, which is infinite at d = 2 (antipodal points;
its draw then fails); we clamp d at 2 - 1e-3, which changes nothing below d = 1.999.

pytorch-metric-learning's ``DistanceWeightedMiner`` differs (it returns all anchor-positive pairs, each
with a negative); we follow ooDML.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tasks.methods.distances import at_least_float32, pairwise_distances, sphere_log_weights
from tasks.methods.miners import Miner, Triplets

# Unit vectors are at most 2 apart; keeping d below 2 keeps log(1 - d^2/4) finite.
_MAX_DISTANCE = 2.0 - 1e-3


def random_positives(labels: Tensor) -> Tensor:
    """One uniformly drawn same-class index per sample, the sample itself if it has no other positive."""
    others = labels[:, None] == labels[None, :]
    others.fill_diagonal_(False)
    alone = (~others.any(1)).nonzero().squeeze(1)
    others[alone, alone] = True
    return torch.multinomial(others.float(), 1).squeeze(1)


class DistanceWeightedSampler(Miner[Triplets]):
    """One (anchor, positive, negative) triplet per anchor; the negative drawn ∝ q(d)^-1."""

    def __init__(self, lower_cutoff: float = 0.5, upper_cutoff: float | None = None) -> None:
        self.lower_cutoff = lower_cutoff
        self.upper_cutoff = upper_cutoff

    def negative_log_weights(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Unnormalised log-probabilities (B, B) of drawing column j as row i's negative (-inf: never)."""
        d = pairwise_distances(embeddings).clamp(self.lower_cutoff, _MAX_DISTANCE)
        log_w = sphere_log_weights(d, embeddings.shape[1])
        negative = labels[:, None] != labels[None, :]
        if self.upper_cutoff is not None:
            near = d < self.upper_cutoff
            # Wu et al.: with no negative under the cut-off, fall back to a uniform draw.
            uniform = negative & ~(negative & near).any(1, keepdim=True)
            log_w = torch.where(uniform, 0.0, log_w)
            negative &= near | uniform
        return log_w.masked_fill(~negative, float("-inf"))

    @torch.no_grad()
    def mine(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        """Index tensors (anchors, positives, negatives); anchors without any negative are skipped."""
        x = embeddings.detach()
        log_w = self.negative_log_weights(at_least_float32(x), labels)
        has_negative = torch.isfinite(log_w).any(1)
        anchors = has_negative.nonzero().squeeze(1)
        probs = torch.softmax(log_w[anchors], dim=1)
        negatives = torch.multinomial(probs, 1).squeeze(1) if len(anchors) else anchors
        positives = random_positives(labels)[anchors]
        return anchors, positives, negatives
