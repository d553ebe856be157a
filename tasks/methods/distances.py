"""Distances between embeddings, and the inverse density of distances on the unit sphere that
distance-weighted sampling draws negatives by (Wu et al., "Sampling Matters in Deep Embedding Learning",
ICCV 2017): ``q(d) ∝ d^(n-2) (1 - d^2/4)^((n-3)/2)`` for points uniform on the unit sphere in R^n.

The ooDML code computes ``log q(d)^-1`` in two ways, kept apart so that every draw and loss stays as
there: its batch miners (``batchminer/distance.py``) with ``log1p`` on distances kept below 2
(:func:`sphere_log_weights`), DiVA's (``batchminer/random_distance.py``, ``criteria/fast_moco.py``) with
``log(1 - d^2/4)`` floored (:func:`floored_sphere_log_weights`).
"""

from __future__ import annotations

import torch
from torch import Tensor


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 or wider: under autocast embeddings may arrive in half precision, too coarse to
    mine on."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distances between the rows of ``x`` (B, D) -> (B, B), from ``|a|² + |b|² - 2ab``."""
    sq = x.pow(2).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0).sqrt()


def sphere_log_weights(distances: Tensor, dim: int) -> Tensor:
    """``log q(d)^-1`` up to a constant, for distances in (0, 2) (``log1p(-d^2/4)`` is infinite at 2)."""
    return (2.0 - dim) * distances.log() - (dim - 3) / 2 * torch.log1p(-0.25 * distances.pow(2))


def floored_sphere_log_weights(distances: Tensor, dim: int) -> Tensor:
    """``log q(d)^-1`` up to a constant, with ``1 - d^2/4`` kept at or above the smallest normal float,
    so an antipodal pair (d = 2), where the formula is infinite and the original's weights become NaN,
    gets a large finite value instead."""
    tiny = torch.finfo(distances.dtype).tiny
    room = (1.0 - 0.25 * distances.pow(2)).clamp_min(tiny)
    return (2.0 - dim) * distances.log() - (dim - 3) / 2 * room.log()
