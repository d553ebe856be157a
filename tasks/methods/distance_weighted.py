"""Distance-weighted sampling (Wu et al., "Sampling Matters in Deep Embedding Learning", ICCV 2017).

Negatives are drawn with probability proportional to ``q(d)^-1``, where

    q(d) ∝ d^(n-2) (1 - d^2/4)^((n-3)/2)

is the density of pairwise distances between points uniform on the unit sphere in R^n. Clipping the
distance below at ``lower_cutoff`` (0.5) bounds the weights, which is the paper's ``min(λ, q(d)^-1)``.

We follow the ooDML reference sampler (Milbich, Roth et al., NeurIPS 2021), which differs from
pytorch-metric-learning's ``DistanceWeightedMiner``: every anchor yields exactly one triplet, with one
random positive (the anchor itself when its class has no other sample in the batch) and one
distance-weighted negative; and its upper cut-off (1.4 in Wu et al.'s code) is switched off, as the
reference's authors found it slightly worse. ``upper_cutoff`` restores Wu et al.'s rule; an anchor whose
negatives all lie beyond it then draws its negative uniformly, as in their code.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Unit vectors are at most 2 apart; keeping d below 2 keeps log(1 - d^2/4) finite.
_MAX_DISTANCE = 2.0 - 1e-3


def pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distances between the rows of ``x`` (B, D) -> (B, B)."""
    sq = x.pow(2).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0).sqrt()


def _random_positives(same: Tensor) -> Tensor:
    """One uniformly drawn same-class index per row, the row itself if it has no other positive."""
    others = same.clone()
    others.fill_diagonal_(False)
    alone = (~others.any(1)).nonzero().squeeze(1)
    others[alone, alone] = True
    return torch.multinomial(others.float(), 1).squeeze(1)


class DistanceWeightedSampler:
    """One (anchor, positive, negative) triplet per anchor; the negative drawn ∝ q(d)^-1."""

    def __init__(self, lower_cutoff: float = 0.5, upper_cutoff: float | None = None) -> None:
        self.lower_cutoff = lower_cutoff
        self.upper_cutoff = upper_cutoff

    def negative_log_weights(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Unnormalised log-probabilities (B, B) of drawing column j as row i's negative (-inf: never)."""
        n = embeddings.shape[1]
        d = pairwise_distances(embeddings).clamp(self.lower_cutoff, _MAX_DISTANCE)
        log_w = (2.0 - n) * d.log() - (n - 3) / 2 * torch.log1p(-0.25 * d.pow(2))
        negative = labels[:, None] != labels[None, :]
        if self.upper_cutoff is not None:
            near = d < self.upper_cutoff
            # Wu et al.: with no negative under the cut-off, fall back to a uniform draw.
            uniform = negative & ~(negative & near).any(1, keepdim=True)
            log_w = torch.where(uniform, 0.0, log_w)
            negative &= near | uniform
        return log_w.masked_fill(~negative, float("-inf"))

    @torch.no_grad()
    def __call__(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Index tensors (anchors, positives, negatives); anchors without any negative are skipped."""
        # in float32: under autocast the embeddings may arrive in half precision
        log_w = self.negative_log_weights(embeddings.detach().float(), labels)
        has_negative = torch.isfinite(log_w).any(1)
        anchors = has_negative.nonzero().squeeze(1)
        probs = torch.softmax(log_w[anchors], dim=1)
        negatives = torch.multinomial(probs, 1).squeeze(1) if len(anchors) else anchors
        positives = _random_positives(labels[:, None] == labels[None, :])[anchors]
        return anchors, positives, negatives
