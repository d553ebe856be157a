"""Retrieval metrics from the ranks of each query's positives (see ``ranks.PositiveRanks``).

With the ranks ``rho_1 < ... < rho_R`` of a query's R positives, precision at ``rho_j`` is ``j / rho_j``,
so every metric is a sum over positive slots, vectorised over all queries at once, in float64 on the
device that holds the ranks.
"""

from __future__ import annotations

import torch

from tasks.evaluate.ranks import PositiveRanks

MAP_DEPTH = 1000


def recall_at_k(pr: PositiveRanks, k: int) -> float:
    """Fraction of queries with at least one positive among their k nearest neighbours.

    Every image is a query; one without positives (a singleton class) counts as a miss.
    """
    _check_depth(pr, k)
    num = pr.num_positives
    if len(pr.ranks) == 0:
        return 0.0
    first = pr.offsets[:-1].clamp(max=len(pr.ranks) - 1)
    hit = (num > 0) & (pr.ranks[first] <= k)
    return float(hit.to(torch.float64).mean())


def map_at_r(pr: PositiveRanks) -> float:
    """Mean average precision at R (Musgrave et al., "A Metric Learning Reality Check", 2020).

    For a query with R positives: sum of precision@i over the ranks i <= R holding a positive,
    divided by R. Queries with R = 0 are left out of the mean, as pytorch-metric-learning's
    AccuracyCalculator does ("lone" query labels); NaN if no query has a positive.
    """
    num = pr.num_positives
    has = num > 0
    if not bool(has.any()):
        return float("nan")
    per_query = _summed_precision(pr, cutoff=torch.repeat_interleave(num, num))
    return float((per_query[has] / num[has]).mean())


def map_at_1000_oodml(pr: PositiveRanks) -> float:
    """mAP@1000 as the ooDML code computes it (reported as ``map@1000``).

    Sum of precision@i over the ranks i <= 1000 holding a positive, divided by the query's class
    size *counting the query itself* (R + 1), so a perfect embedding scores R / (R + 1) < 1;
    averaged over all queries (a singleton class scores 0).
    """
    _check_depth(pr, MAP_DEPTH)
    num = pr.num_positives
    return float((_summed_precision(pr, cutoff=MAP_DEPTH) / (num + 1)).mean())


def _summed_precision(pr: PositiveRanks, cutoff: int | torch.Tensor) -> torch.Tensor:
    """Per query: sum of j / rho_j over its positives j with rank rho_j <= cutoff (float64)."""
    num = pr.num_positives
    query = torch.repeat_interleave(torch.arange(len(num), device=num.device), num)
    j = torch.arange(1, len(pr.ranks) + 1, device=num.device) - torch.repeat_interleave(pr.offsets[:-1], num)
    ranks = pr.ranks.to(torch.float64)
    precision = torch.where(pr.ranks <= cutoff, j / ranks, 0.0)
    return torch.zeros(len(num), dtype=torch.float64, device=num.device).index_add_(0, query, precision)


def _check_depth(pr: PositiveRanks, k: int) -> None:
    n = len(pr.depth)
    shallowest = int(pr.depth.min()) if n else 0
    if shallowest < min(k, n - 1):
        raise ValueError(f"ranks were computed to depth {shallowest}, below the cutoff {k}")
