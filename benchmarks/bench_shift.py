"""Kernel MMD of an SOP-size split against the naive full-matrix numpy version measured in the same run.

    python benchmarks/bench_shift.py [--train 11318] [--test 11316] [--dim 2048] [--splits 8] [--no-naive]

Synthetic class means (non-negative, like pooled ReLU features) of SOP's published partition sizes.
``tasks.splits.shift`` computes MMD^2_u block-wise (lower blocks of the symmetric kernel skipped, one
float64 block of at most 2048 x 2048 held at a time); the naive version builds K(X,X), K(Y,Y) and K(X,Y) in full
(1 GB each at this size, one at a time). Both use the same bandwidth (the median heuristic over a seeded
4000-point subsample, timed apart); their values are compared. ``--splits S`` then measures S random
partitions of the same classes in one pass, as ``oodml splits build`` measures a file's splits.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from loadavg import load

from tasks.splits.shift import median_heuristic, split_mmd2


def peak() -> str:
    """The most memory numpy allocated (tracemalloc sees its arrays) since the last call, beyond what
    was held then; resets the count."""
    held, most = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    return f"peak extra memory {(most - held) / 2**30:.2f} GiB"


def naive_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """MMD^2_u from the three full kernel matrices."""

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(squared, 0.0) / (2 * sigma**2))

    m, n = len(x), len(y)
    xx = kernel(x, x)
    within_x = (xx.sum() - np.trace(xx)) / (m * (m - 1))
    del xx
    yy = kernel(y, y)
    within_y = (yy.sum() - np.trace(yy)) / (n * (n - 1))
    del yy
    return float(within_x + within_y - 2 * kernel(x, y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=11318)
    parser.add_argument("--test", type=int, default=11316)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--splits", type=int, default=8)
    parser.add_argument("--no-naive", action="store_true", help="skip the full-matrix reference")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    total = args.train + args.test
    points = rng.gamma(0.5, 1.0, size=(total, args.dim)) + np.linspace(0, 0.2, total)[:, None]
    train = np.zeros((1, total), dtype=bool)
    train[0, : args.train] = True
    print(f"{args.train} train + {args.test} test class means, {args.dim}-d, float64; {load()}")

    start = time.perf_counter()
    sigma = median_heuristic(points)
    print(f"median heuristic (4000-point subsample): {time.perf_counter() - start:.2f} s, sigma {sigma:.4f}")

    tracemalloc.start()
    peak()
    start = time.perf_counter()
    blocked = split_mmd2(points, train, ~train, sigma)[0]
    ours = time.perf_counter() - start
    print(f"oodml block-wise MMD^2_u, one split: {ours:.1f} s, value {blocked:.10e}; {peak()}; {load()}")

    if not args.no_naive:
        peak()
        start = time.perf_counter()
        naive = naive_mmd2(points[: args.train], points[args.train :], sigma)
        seconds = time.perf_counter() - start
        print(
            f"naive full-matrix MMD^2_u, one split: {seconds:.1f} s, value {naive:.10e}; {peak()}; {load()}"
        )
        print(f"speed-up {seconds / ours:.2f}x; relative difference {abs(blocked - naive) / abs(naive):.1e}")

    if args.splits > 1:
        train = np.stack([rng.permutation(total) < args.train for _ in range(args.splits)])
        start = time.perf_counter()
        split_mmd2(points, train, ~train, sigma)
        seconds = time.perf_counter() - start
        print(
            f"oodml, {args.splits} splits in one pass: {seconds:.1f} s ({seconds / ours:.2f}x one split); {load()}"
        )


if __name__ == "__main__":
    main()
