"""Retrieval metrics from the ranks of each query's positives (see ``ranks.PositiveRanks``).

With the ranks ``rho_1 < ... < rho_R`` of a query's R positives, precision at ``rho_j`` is ``j / rho_j``,
so every metric is a sum over positive slots, vectorised over all queries at once.
"""

from __future__ import annotations

import numpy as np

from tasks.evaluate.ranks import PositiveRanks

MAP_DEPTH = 1000


def recall_at_k(pr: PositiveRanks, k: int) -> float:
    """Fraction of queries with at least one positive among their k nearest neighbours.

    Every image is a query; one without positives (a singleton class) counts as a miss.
    """
    _check_depth(pr, k)
    num = pr.num_positives
    hit = np.zeros(len(num), bool)
    has = num > 0
    hit[has] = pr.ranks[pr.offsets[:-1][has]] <= k
    return float(hit.mean())


def map_at_r(pr: PositiveRanks) -> float:
    """Mean average precision at R (Musgrave et al., "A Metric Learning Reality Check", 2020).

    For a query with R positives: sum of precision@i over the ranks i <= R holding a positive,
    divided by R. Queries with R = 0 are left out of the mean, as pytorch-metric-learning's
    AccuracyCalculator does ("lone" query labels); NaN if no query has a positive.
    """
    num = pr.num_positives
    has = num > 0
    if not has.any():
        return float("nan")
    per_query = _summed_precision(pr, cutoff=np.repeat(num, num))
    return float(np.mean(per_query[has] / num[has]))


def map_at_1000_oodml(pr: PositiveRanks) -> float:
    """mAP@1000 as the ooDML code computes it (reported as ``map@1000``).

    Sum of precision@i over the ranks i <= 1000 holding a positive, divided by the query's class
    size *counting the query itself* (R + 1), so a perfect embedding scores R / (R + 1) < 1;
    averaged over all queries (a singleton class scores 0).
    """
    _check_depth(pr, MAP_DEPTH)
    num = pr.num_positives
    return float(np.mean(_summed_precision(pr, cutoff=MAP_DEPTH) / (num + 1)))


def _summed_precision(pr: PositiveRanks, cutoff: int | np.ndarray) -> np.ndarray:
    """Per query: sum of j / rho_j over its positives j with rank rho_j <= cutoff."""
    num = pr.num_positives
    query = np.repeat(np.arange(len(num)), num)
    j = np.arange(len(pr.ranks)) - np.repeat(pr.offsets[:-1], num) + 1
    precision = np.where(pr.ranks <= cutoff, j / pr.ranks, 0.0)
    return np.bincount(query, weights=precision, minlength=len(num))


def _check_depth(pr: PositiveRanks, k: int) -> None:
    n = len(pr.depth)
    if (pr.depth < min(k, n - 1)).any():
        raise ValueError(f"ranks were computed to depth {pr.depth.min()}, below the cutoff {k}")
