"""FID and split-progression speed against the textbook scipy ``sqrtm`` route, in the same run.

    python benchmarks/bench_fid.py [--classes 200] [--dim 2048]

Times (1) one FID between two halves of ``classes`` class means by the fast route and by ``sqrtm``, and
(2) all three progressions with the published CUB settings (25 harder, 15 easier, 35 removal steps),
whose cost with ``sqrtm`` is estimated as (number of FID evaluations) x (one ``sqrtm`` FID).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tasks.splits.progressions as progressions
from tasks.splits.fid import _fid_from_covariances, fid, fid_reference


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    start = time.perf_counter()
    for _ in range(repeat):
        value = fn()
    return (time.perf_counter() - start) / repeat, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--dim", type=int, default=2048)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    # ResNet-like class means: non-negative, correlated, a shared direction plus class-specific parts.
    means = np.abs(rng.normal(size=(args.classes, args.dim)) + rng.normal(size=(args.classes, 1)))
    names = [f"c{i}" for i in range(args.classes)]
    half = args.classes // 2
    a, b = means[:half], means[half:]

    t_fast, v_fast = _timed(lambda: fid(a, b), repeat=5)
    t_ref, v_ref = _timed(lambda: fid_reference(a, b))
    t_cov, v_cov = _timed(lambda: _fid_from_covariances(a, b, 1e-8))
    print(
        f"one FID ({half} vs {args.classes - half} vectors, d={args.dim}): fast {t_fast * 1e3:.1f} ms, "
        f"sqrtm {t_ref * 1e3:.0f} ms, ratio {t_ref / t_fast:.0f}x\n"
        f"  values: fast {v_fast:.12g}, sqrtm {v_ref:.12g} (rel. diff {abs(v_fast - v_ref) / abs(v_ref):.1e}), "
        f"d x d Cholesky+eigvalsh route {v_cov:.12g} (rel. diff {abs(v_fast - v_cov) / abs(v_cov):.1e}, "
        f"{t_cov:.1f} s)"
    )

    calls = 0
    inner = progressions.fid_from_gram

    def counting(*a, **k):
        nonlocal calls
        calls += 1
        return inner(*a, **k)

    progressions.fid_from_gram = counting
    try:
        t_prog, result = _timed(
            lambda: progressions.build_progressions(means, names, names[:half], names[half:])
        )
    finally:
        progressions.fid_from_gram = inner
    steps = sum(len(v) for v in result.values())
    estimate = calls * t_ref
    print(
        f"progressions (CUB settings, {steps} recorded steps, {calls} FID evaluations): {t_prog:.2f} s; "
        f"with sqrtm about {estimate:.0f} s; ratio {estimate / t_prog:.0f}x"
    )


if __name__ == "__main__":
    main()
