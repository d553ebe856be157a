"""Kernel MMD between the train and test class means of a split: a shift measure beside FID.

MMD^2_u (Gretton et al. 2012, "A Kernel Two-Sample Test", eq. 3), the unbiased estimator of the squared
maximum mean discrepancy between samples X (m points) and Y (n points)::

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (n (n-1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)

with the RBF kernel ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``. Being unbiased, it can be slightly
negative when the two samples come from one distribution.

Bandwidth: the median heuristic, ``sigma`` = the median Euclidean distance over all distinct pairs of a
set of points; above ``MEDIAN_POINTS`` points, over the pairs of a seeded random subsample of that many
points (the MMD itself always uses every point). A split file's splits are all measured under ONE
bandwidth, the median over all its class means (the pooled train and test classes of every swap split;
removal splits hold a subset of them): with a kernel of its own per split, MMDs of two splits would
not be comparable, and ranking splits by shift is what the measure is for.

The kernel sums run over blocks of at most ``BLOCK`` x ``BLOCK`` pairs in float64 (squared distances
through a matrix product of centred points), the symmetric matrix's lower blocks skipped, and every split
of a file is measured in the same pass over the blocks: the kernel over all class means is computed once
for all splits (every split of a swap progression holds the same classes), and no more than one block of
it is held per thread. The products stay in float64: a float32 product of SOP-like class means (6,000 x
2048) moved the MMD^2_u of a random split, near zero, by 1.6e-7 relative.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from tasks.splits.fid import fid

MEDIAN_POINTS = 4000  # the median heuristic subsamples larger point sets to this many (seeded)
MEDIAN_SEED = 0
BLOCK = 2048  # rows of a kernel block (float64: 32 MiB a block)
# Threads that compute kernel blocks at once, each with one BLAS thread. Blocks are coarse: on a busy box
# a thread preempted mid-block delays only its block, where a multi-threaded product waits for it at every
# barrier.
MMD_THREADS = min(2, os.cpu_count() or 1)


def median_heuristic(points: np.ndarray, max_points: int = MEDIAN_POINTS, seed: int = MEDIAN_SEED) -> float:
    """The median Euclidean distance over all distinct pairs of ``points`` (rows), or of a seeded random
    subsample of ``max_points`` rows when there are more."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        raise ValueError(f"the median heuristic needs at least 2 points, got {len(points)}")
    if len(points) > max_points:
        chosen = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
        points = points[chosen]
    centred = points - points.mean(0)
    squared = np.einsum("ij,ij->i", centred, centred)
    upper = np.triu_indices(len(points), k=1)
    distances = (squared[:, None] + squared[None, :] - 2 * centred @ centred.T)[upper]
    return float(np.median(np.sqrt(np.maximum(distances, 0.0))))


def split_mmd2(
    points: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    bandwidth: float,
    block: int = BLOCK,
    threads: int = MMD_THREADS,
) -> np.ndarray:
    """MMD^2_u between the ``train`` and the ``test`` rows of ``points``, for every split at once.

    ``train`` and ``test`` are boolean masks (splits x points), disjoint within a split (a point on
    neither side is left out, as a removed class). One pass over the blocks of the kernel matrix, shared
    by ``threads`` threads (one block each at a time, on one BLAS thread); the blocks' sums are added in
    block order, so the values do not depend on the thread count. ``threads=1``: all blocks in this
    thread, on the BLAS library's own thread count.
    """
    points = np.asarray(points, dtype=np.float64)
    train, test = np.atleast_2d(np.asarray(train, bool)), np.atleast_2d(np.asarray(test, bool))
    m, n = train.sum(1), test.sum(1)
    if train.shape != test.shape or train.shape[1] != len(points):
        raise ValueError(f"masks {train.shape} and {test.shape} do not match {len(points)} points")
    if (train & test).any():
        raise ValueError("a point is on both sides of a split")
    if (m < 2).any() or (n < 2).any():
        raise ValueError("MMD^2_u needs at least 2 points on each side of every split")
    if not bandwidth > 0:
        raise ValueError(f"the kernel bandwidth must be positive, got {bandwidth}")
    centred = points - points.mean(0)  # distances are translation invariant; centring keeps them precise
    squared = np.einsum("ij,ij->i", centred, centred)
    sides = np.concatenate([train, test]).T.astype(np.float64)  # points x (2 splits): train, then test
    count = len(train)
    block = -(-len(points) // -(-len(points) // block))  # even blocks of at most ``block`` rows: none ragged
    starts = range(0, len(points), block)
    pairs = [(a, b) for a in starts for b in starts if b >= a]  # symmetric: block (b, a) stands for (a, b)
    scale = -1.0 / (2.0 * bandwidth**2)

    def sums(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """One block's kernel sums, per split: within train, within test, across (and its mirror)."""
        a, b = pair
        rows, cols = slice(a, a + block), slice(b, b + block)
        kernel = squared[rows, None] + squared[None, cols] - 2 * centred[rows] @ centred[cols].T
        np.maximum(kernel, 0.0, out=kernel)
        kernel *= scale
        np.exp(kernel, out=kernel)
        if a == b:
            np.fill_diagonal(kernel, 0.0)  # the estimator leaves out each point's pair with itself
        summed = kernel @ sides[cols]  # rows x (2 splits): kernel sums to each side's points
        to_train, to_test = summed[:, :count], summed[:, count:]
        row_train, row_test = sides[rows, :count], sides[rows, count:]
        twice = 1.0 if a == b else 2.0
        return (
            twice * np.einsum("is,is->s", row_train, to_train),
            twice * np.einsum("is,is->s", row_test, to_test),
            np.einsum("is,is->s", row_train, to_test),
            np.einsum("is,is->s", row_test, to_train) if a != b else None,
        )

    if threads > 1:
        # numpy releases the GIL in its products and element-wise passes; one BLAS thread per block
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            blocks = list(pool.map(sums, pairs))
    else:
        blocks = map(sums, pairs)
    within_train, within_test, across = np.zeros(count), np.zeros(count), np.zeros(count)
    for train_sum, test_sum, across_sum, mirror_sum in blocks:  # in block order, whichever thread ran it
        within_train += train_sum
        within_test += test_sum
        across += across_sum
        if mirror_sum is not None:
            across += mirror_sum
    return within_train / (m * (m - 1)) + within_test / (n * (n - 1)) - 2 * across / (m * n)


def splits_mmd2(
    class_names: Sequence[str],
    class_means: np.ndarray,
    splits: Sequence[tuple[Sequence[str], Sequence[str]]],
    bandwidth: float | None = None,
) -> tuple[np.ndarray, float]:
    """MMD^2_u of every (train classes, test classes) split under one bandwidth, and that bandwidth
    (default: the median heuristic over all ``class_means``)."""
    index = {c: i for i, c in enumerate(class_names)}
    train = np.zeros((len(splits), len(class_names)), dtype=bool)
    test = np.zeros_like(train)
    for s, (train_classes, test_classes) in enumerate(splits):
        train[s, [index[c] for c in train_classes]] = True
        test[s, [index[c] for c in test_classes]] = True
    if bandwidth is None:
        bandwidth = median_heuristic(class_means)
    return split_mmd2(class_means, train, test, bandwidth), bandwidth


def shift_measures(
    class_names: Sequence[str],
    class_means: np.ndarray,
    splits: Sequence[tuple[Sequence[str], Sequence[str]]],
    other_features: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Per split, its shift measures beyond FID: ``mmd`` (MMD^2_u under the file's one bandwidth) and,
    for every other extractor's class means (rows aligned with ``class_names``), ``fid@<extractor>``;
    and what the file's provenance records of them (kernel, bandwidth and how it was chosen)."""
    mmd, bandwidth = splits_mmd2(class_names, class_means, splits)
    measures = [{"mmd": float(value)} for value in mmd]
    index = {c: i for i, c in enumerate(class_names)}
    rows = [([index[c] for c in train], [index[c] for c in test]) for train, test in splits]
    for name, means in (other_features or {}).items():
        for measured, (train, test) in zip(measures, rows, strict=True):
            measured[f"fid@{name}"] = fid(means[train], means[test])
    described = {
        "mmd": "MMD^2_u (Gretton et al. 2012, eq. 3) between train and test class means, RBF kernel "
        "exp(-|x-y|^2 / (2 bandwidth^2))",
        "bandwidth": bandwidth,
        "bandwidth_rule": f"median Euclidean distance over the pairs of all {len(class_names)} class means "
        f"(a seeded subsample of {MEDIAN_POINTS} when more), one for every split of the file",
        "extractors": sorted(other_features or {}),
    }
    return measures, described
