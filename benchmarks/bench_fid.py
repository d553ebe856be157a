"""FID and split-progression speed against references measured in the same run.

    python benchmarks/bench_fid.py [--classes 200] [--dim 2048]
    python benchmarks/bench_fid.py --sop [--steps 20] [--old-steps 3] [--sqrtm] [--blas-threads T]
                                         [--eigen-threads T] [--old-blas-threads T]
    python benchmarks/bench_fid.py --sop-cli [--steps 20] [--no-compare]

Default case: one FID between two halves of ``classes`` class means by the fast route and by the textbook
scipy ``sqrtm``, and all three progressions with the published CUB settings (25 harder, 15 easier, 35
removal steps), whose cost with ``sqrtm`` is estimated as (number of FID evaluations) x (one ``sqrtm`` FID).

``--sop``: the SOP-size harder progression (22,634 synthetic class means, 2048-d, K=1000 swaps per step,
H=1000, N=20 steps) by ``tasks.splits.progressions.swap_progression`` against round 1's route, kept
below as ``_old_*`` (full ``np.cov`` covariances, numpy Cholesky + ``eigvalsh`` at every step, full
difference arrays for the scores, a Python walk for the picks). The old route costs the same at every
step (nothing is carried between steps), so it runs ``--old-steps`` steps and its time is extrapolated
linearly to N steps: old_N = old_m * N / m. Its recorded FIDs and class lists for those m steps are
compared with the new route's (lists identical, FIDs to 1e-6 relative); the new route's last recorded FID
is compared with a fresh recomputation from the class means (and with ``sqrtm`` under ``--sqrtm``).
The new route runs on ``build_progressions``' BLAS thread count (one), the old one on all threads as
round 1 ran it; ``--old-blas-threads 1`` gives the like-for-like ratio on a busy box, where two BLAS
threads slow down far more than one.

``--sop-cli``: the whole ``oodml splits build --features`` process (a subprocess: imports, npz load,
the harder progression with K=1000, H=1000, N=``--steps``, no easier or removal steps, selection, MMD
shift measures, the written files) on the same synthetic 22,634 x 2048 class means, timed from outside.
Then, in this process and the same run, each of its two heavy parts by the route before issue 22 and by
today's: the progression with its FID cross terms in this process (``FID_WORKERS = 0``) against a worker
process beside it, and the MMD of the splits the command selected on one thread and the BLAS library's
threads (``threads=1``) against ``MMD_THREADS`` threads of one BLAS thread each; the values of each pair
are compared (class lists identical, FIDs and MMDs bit for bit), and checked against the file's.
``--no-compare`` times the command alone. The CPU model and the load average come with every figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loadavg import cpu, load
from threadpoolctl import threadpool_limits

import tasks.splits.fid as fid_module
import tasks.splits.progressions as progressions
import tasks.splits.shift as shift
from tasks.splits.fid import _fid_from_covariances, fid, fid_reference
from tasks.splits.progressions import PartitionFID, ProgressionSettings, swap_progression


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    start = time.perf_counter()
    for _ in range(repeat):
        value = fn()
    return (time.perf_counter() - start) / repeat, value


# ---- round 1's route, verbatim apart from names (the reference of the --sop case) -----------------------


def _old_fid_from_covariances(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    d = a.shape[1]
    ca = np.cov(a, rowvar=False)
    cb = np.cov(b, rowvar=False)
    chol = np.linalg.cholesky(ca + eps * np.eye(d))
    eig = np.linalg.eigvalsh(chol.T @ (cb + eps * np.eye(d)) @ chol)
    cross = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(ca) + np.trace(cb) - 2.0 * cross)


def _old_shift_scores(means, train, test):
    t, s = means[train], means[test]
    mean_t, mean_s = t.mean(axis=0), s.mean(axis=0)
    train_scores = np.linalg.norm(t - mean_s, axis=1) - np.linalg.norm(t - mean_t, axis=1)
    test_scores = np.linalg.norm(s - mean_t, axis=1) - np.linalg.norm(s - mean_s, axis=1)
    return train_scores, test_scores


class _OldSwapPicker:
    def __init__(self, history: int):
        self.history = history
        self.train_chosen: list[int] = []
        self.test_chosen: list[int] = []

    def _recent(self, chosen):
        return set(chosen[-self.history :]) if self.history else set()

    def pick(self, train_order, test_order, k):
        recent_train, recent_test = self._recent(self.train_chosen), self._recent(self.test_chosen)
        found_train = found_test = None
        for position in range(k, max(len(train_order), len(test_order))):
            if (
                found_train is None
                and position < len(train_order)
                and int(train_order[position]) not in recent_train
            ):
                found_train = int(train_order[position])
            if (
                found_test is None
                and position < len(test_order)
                and int(test_order[position]) not in recent_test
            ):
                found_test = int(test_order[position])
            if found_train is not None and found_test is not None:
                break
        self.train_chosen.append(found_train)
        self.test_chosen.append(found_test)
        return found_train, found_test

    def pick_step(self, means, train, test, k_swaps, harder):
        train_scores, test_scores = _old_shift_scores(means, train, test)
        sign = 1.0 if harder else -1.0
        train_order = np.argsort(sign * train_scores, kind="stable")
        test_order = np.argsort(sign * test_scores, kind="stable")
        return [self.pick(train_order, test_order, k) for k in range(k_swaps)]


def _old_harder_progression(means, train, test, steps, k_swaps, history):
    """Round 1's ``swap_progression`` on the n >= d route: (FID, train, test) of each recorded step."""
    train, test = np.array(train, copy=True), np.array(test, copy=True)
    picker = _OldSwapPicker(history)
    recorded = []
    for _ in range(steps):
        recorded.append((_old_fid_from_covariances(means[train], means[test]), train.copy(), test.copy()))
        for i, j in picker.pick_step(means, train, test, k_swaps, True):
            train[i], test[j] = test[j], train[i]
    return recorded


# ---- cases ---------------------------------------------------------------------------------------------


def sop_like_means(classes: int = 22634, dim: int = 2048, seed: int = 0) -> np.ndarray:
    """Synthetic class means shaped like pooled ResNet50 features: non-negative, a decaying low-rank part
    (64 factors, scale 1/sqrt(rank)) plus independent noise, so the covariance has a realistic spectrum."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(classes, 64)) / np.sqrt(np.arange(1, 65))
    loadings = rng.normal(size=(64, dim))
    return np.maximum(0.5 + 0.0375 * (factors @ loadings) + 0.1 * rng.normal(size=(classes, dim)), 0.0)


def sop_case(args: argparse.Namespace) -> None:
    means = sop_like_means(seed=args.seed)
    n = len(means)
    names = [f"p{i}" for i in range(n)]
    order = np.random.default_rng(args.seed + 1).permutation(n)
    train, test = order[:11318], order[11318:]  # SOP's default split sizes
    settings = ProgressionSettings(steps=args.steps, swaps_per_step=1000, history=1000)
    print(
        f"SOP-size harder progression: {n} classes, d={means.shape[1]}, K=1000, H=1000, N={args.steps}; "
        f"new route on {args.blas_threads or 'all'} BLAS threads, its eigenvalue step on "
        f"{fid_module.EIGEN_THREADS or 'all'}"
    )

    print(f"  before new route: {load()}", flush=True)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        t_new, (steps, _, _) = _timed(
            lambda: swap_progression(means, names, train, test, settings, True, PartitionFID(means))
        )
    print(f"  new route: {t_new:.1f} s ({t_new / args.steps:.2f} s/step); {load()}", flush=True)

    with threadpool_limits(limits=args.old_blas_threads or None, user_api="blas"):
        t_old, old = _timed(lambda: _old_harder_progression(means, train, test, args.old_steps, 1000, 1000))
    old_n = t_old * args.steps / args.old_steps
    print(
        f"  old route ({args.old_blas_threads or 'all'} BLAS threads): {t_old:.1f} s for {args.old_steps} steps ({t_old / args.old_steps:.2f} s/step), "
        f"extrapolated to {args.steps} steps {old_n:.1f} s; {load()}"
    )
    print(f"  ratio old/new {old_n / t_new:.2f}x; new route under 40 s: {t_new < 40}")

    worst = 0.0
    for step, (value, old_train, old_test) in zip(steps, old, strict=False):
        assert list(step.train) == [names[c] for c in old_train], f"class lists differ at step {step.key}"
        assert list(step.test) == [names[c] for c in old_test], f"class lists differ at step {step.key}"
        worst = max(worst, abs(step.fid - value) / abs(value))
    print(
        f"  first {len(old)} steps: class lists identical to the old route's; FID max rel. diff {worst:.1e}"
    )
    last = steps[-1]
    index = {c: i for i, c in enumerate(names)}
    a, b = means[[index[c] for c in last.train]], means[[index[c] for c in last.test]]
    fresh = _old_fid_from_covariances(a, b)
    print(
        f"  last step {last.key}: recorded {last.fid:.12g}, fresh recomputation {fresh:.12g} "
        f"(rel. diff {abs(last.fid - fresh) / abs(fresh):.1e})"
    )
    if args.sqrtm:
        textbook = fid_reference(a, b)
        print(
            f"  last step vs sqrtm {textbook:.12g} (rel. diff {abs(last.fid - textbook) / abs(textbook):.1e})"
        )
    print(f"  FIDs by step: {', '.join(f'{s.fid:.3g}' for s in steps)}")


def _clocked(fn) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds (this process's threads and its finished children's) and the value: on
    a loaded box the CPU seconds show the work done, the wall seconds what parallelism bought of it."""
    wall, cpu, children = (
        time.perf_counter(),
        time.process_time(),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    value = fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return time.perf_counter() - wall, time.process_time() - cpu + children_cpu, value


def sop_cli_case(args: argparse.Namespace) -> None:
    means = sop_like_means(seed=args.seed)
    n = len(means)
    names = [f"p{i}" for i in range(n)]
    order = np.random.default_rng(args.seed + 1).permutation(n)
    train, test = order[:11318], order[11318:]  # SOP's default split sizes
    print(f"SOP-size oodml splits build --features: {n} x {means.shape[1]} class means, K=1000, H=1000, "
          f"N={args.steps}, no easier or removal steps; {cpu()}; {load()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        features, out = Path(tmp) / "sop_means.npz", Path(tmp) / "splits"
        np.savez(features, class_names=np.array(names), class_means=means,
                 train=np.array(names)[train], test=np.array(names)[test])  # fmt: skip
        command = [sys.executable, "-m", "study.cli", "splits", "build", "--features", str(features),
                   "--out", str(out), "--steps", str(args.steps), "--swaps-per-step", "1000",
                   "--history", "1000", "--easier-steps", "0", "--removal-steps", "0"]  # fmt: skip
        print(f"  before the command: {load()}", flush=True)
        t_cli, cpu_cli, _ = _clocked(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))
        print(f"  whole command: {t_cli:.1f} s, {cpu_cli:.1f} CPU s (goal < 45 s: {t_cli < 45}); {load()}",
              flush=True)  # fmt: skip
        written = json.loads((out / "splits.json").read_text())
    if args.no_compare:
        return
    settings = ProgressionSettings(steps=args.steps, swaps_per_step=1000, history=1000)
    runs = []
    for workers in (0, progressions.FID_WORKERS):
        progressions.FID_WORKERS = workers
        with threadpool_limits(limits=progressions.BLAS_THREADS, user_api="blas"):
            seconds, cpu_seconds, (steps, _, _) = _clocked(
                lambda: swap_progression(means, names, train, test, settings, True, PartitionFID(means))
            )
        runs.append(steps)
        print(f"  progression, FID_WORKERS={workers}: {seconds:.1f} s, {cpu_seconds:.1f} CPU s; {load()}",
              flush=True)  # fmt: skip
    before, after = runs
    assert [s.as_dict() for s in before] == [s.as_dict() for s in after], "the two routes' steps differ"
    recorded = {step["key"]: step["fid"] for step in written["progressions"]["harder"]}
    assert all(recorded[s.key] == s.fid for s in after), "the command's FIDs differ from this run's"
    print("  progression: steps, class lists and FIDs identical in both routes and in the command's file")

    splits = [(s["train"], s["test"]) for s in written["splits"]]
    index = {c: i for i, c in enumerate(names)}
    masks = np.zeros((2, len(splits), n), dtype=bool)
    for s, (train_classes, test_classes) in enumerate(splits):
        masks[0, s, [index[c] for c in train_classes]] = True
        masks[1, s, [index[c] for c in test_classes]] = True
    bandwidth = written["provenance"]["shift"]["bandwidth"]
    timed = []
    for threads in (1, shift.MMD_THREADS):
        timed.append(
            _clocked(lambda t=threads: shift.split_mmd2(means, masks[0], masks[1], bandwidth, threads=t))
        )
        print(f"  MMD of {len(splits)} splits, threads={threads}: {timed[-1][0]:.1f} s, "
              f"{timed[-1][1]:.1f} CPU s; {load()}", flush=True)  # fmt: skip
    (t_old, _, old), (t_new, _, new) = timed
    stored = np.array([s["shift"]["mmd"] for s in written["splits"]])
    print(f"  MMD old/new {t_old / t_new:.2f}x; max rel. diff old vs new {np.max(np.abs(old - new) / np.abs(old)):.1e}, "
          f"new vs the command's file {np.max(np.abs(new - stored) / np.abs(stored)):.1e}")  # fmt: skip


def cub_case(args: argparse.Namespace) -> None:
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
        f"sqrtm {t_ref * 1e3:.0f} ms, ratio {t_ref / t_fast:.0f}x; {load()}\n"
        f"  values: fast {v_fast:.12g}, sqrtm {v_ref:.12g} (rel. diff {abs(v_fast - v_ref) / abs(v_ref):.1e}), "
        f"d x d Cholesky+eigenvalue route {v_cov:.12g} (rel. diff {abs(v_fast - v_cov) / abs(v_cov):.1e}, "
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
        f"with sqrtm about {estimate:.0f} s; ratio {estimate / t_prog:.0f}x; {load()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--sop", action="store_true", help="the SOP-size harder progression instead")
    parser.add_argument("--sop-cli", action="store_true", help="the whole SOP-size splits command instead")
    parser.add_argument("--no-compare", action="store_true", help="--sop-cli: time the command alone")
    parser.add_argument("--steps", type=int, default=20, help="--sop: recorded steps N")
    parser.add_argument("--old-steps", type=int, default=3, help="--sop: steps the old route runs")
    parser.add_argument("--seed", type=int, default=0, help="--sop: seed of the synthetic class means")
    parser.add_argument(
        "--eigen-threads",
        type=int,
        default=None,
        help="BLAS threads of the eigenvalue step (0: all; default: fid's)",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="--sop: BLAS threads of the new route (0: all; default: build_progressions' BLAS_THREADS)",
    )
    parser.add_argument(
        "--old-blas-threads",
        type=int,
        default=0,
        help="--sop: BLAS threads of the old route (0: all, as it ran)",
    )
    parser.add_argument("--sqrtm", action="store_true", help="--sop: also check the last FID with sqrtm")
    args = parser.parse_args()
    if args.blas_threads is None:
        args.blas_threads = progressions.BLAS_THREADS
    args.blas_threads = args.blas_threads or None  # 0: all threads
    if args.eigen_threads is not None:
        fid_module.EIGEN_THREADS = args.eigen_threads or None  # 0: all threads
    if args.sop_cli:
        sop_cli_case(args)
    else:
        sop_case(args) if args.sop else cub_case(args)


if __name__ == "__main__":
    main()
