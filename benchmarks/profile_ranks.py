"""Where the exact kNN metrics' time goes on the CPU: the block products vs everything beyond them.

On the synthetic set of ``bench_evaluate.py`` (same shape, same seed), in one process and in turn:

- ``products``: the symmetric half of the similarity products alone (``ranks._blocks`` drained: the
  floor of our kNN metrics);
- ``kNN metrics``: ``retrieval_metrics(..., with_nmi=False)``, with the CPU seconds of the calling
  thread (the bookkeeping: comparisons, counting, thresholds) and of the whole process (products and
  bookkeeping), and the calling thread's CPU seconds per step: ``_above`` (comparison and flat
  ``nonzero`` of a block), ``add`` (ranking keys, sort, ``searchsorted``), ``thresholds``, and the rest
  (the positives' products and sort, the metrics);
- with ``--faiss``, faiss's bare exact ``IndexFlatIP`` k=12 search (the goal's denominator).

Each figure is the minimum over ``--repeat`` runs, the steps alternating within a run; the load average
is printed with every figure. ``--threads 1`` holds OpenBLAS, torch and faiss to one thread: the CPU
seconds then show the work itself, which a busy box distorts less than wall times.

    python benchmarks/profile_ranks.py --n 36784 --repeat 3
    python benchmarks/profile_ranks.py --faiss           # full size (73,568 x 512)
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import faiss
import torch
from bench_evaluate import synthetic
from loadavg import load
from threadpoolctl import threadpool_limits

from tasks.evaluate import ranks, retrieval_metrics

STEPS = {"_above": ranks, "add": ranks._Counts, "thresholds": ranks._Counts}


@contextmanager
def step_clock(cpu: dict[str, float]) -> Iterator[None]:
    """Adds the calling thread's CPU seconds in each of STEPS to ``cpu`` while active."""
    saved = {name: getattr(owner, name) for name, owner in STEPS.items()}

    def clocked(name: str, fn: Callable) -> Callable:
        def run(*args, **kwargs):
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[name] += time.thread_time() - start

        return run

    for name, owner in STEPS.items():
        setattr(owner, name, clocked(name, saved[name]))
    try:
        yield
    finally:
        for name, owner in STEPS.items():
            setattr(owner, name, saved[name])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=73_568)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--noise", type=float, default=2.2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="OpenBLAS/torch/faiss threads")
    parser.add_argument("--faiss", action="store_true", help="also time faiss's bare k=12 search")
    args = parser.parse_args()

    x, labels = synthetic(args.n, args.d, args.noise, seed=0)
    xt = torch.from_numpy(x)
    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    print(
        f"{len(x)} x {x.shape[1]}, {labels.max() + 1} classes, threads {args.threads or 'default'}; {load()}"
    )

    def products() -> None:
        with ranks.one_thread_on_cpu(xt.device):
            for _ in ranks._blocks(xt, xt, ranks.CPU_BLOCK, numpy_kernels=True):
                pass

    def faiss_search() -> None:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        index.search(x, 12)

    wall: dict[str, float] = defaultdict(lambda: float("inf"))
    cpu: dict[str, float] = defaultdict(lambda: float("inf"))
    with threadpool_limits(limits=args.threads):
        for r in range(args.repeat):
            start = time.perf_counter()
            products()
            wall["products"] = min(wall["products"], time.perf_counter() - start)
            print(f"run {r}: products     {time.perf_counter() - start:7.2f} s  ({load()})", flush=True)

            steps: dict[str, float] = defaultdict(float)
            start, process, thread = time.perf_counter(), time.process_time(), time.thread_time()
            with step_clock(steps):
                retrieval_metrics(x, labels, with_nmi=False)
            took = time.perf_counter() - start
            steps["calling thread"] = time.thread_time() - thread
            steps["process"] = time.process_time() - process
            steps["rest"] = steps["calling thread"] - sum(steps[name] for name in STEPS)
            wall["kNN metrics"] = min(wall["kNN metrics"], took)
            for name, seconds in steps.items():
                cpu[name] = min(cpu[name], seconds)
            print(
                f"run {r}: kNN metrics  {took:7.2f} s  ({load()}); CPU s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()),
                flush=True,
            )
            if args.faiss:
                start = time.perf_counter()
                faiss_search()
                wall["faiss"] = min(wall["faiss"], time.perf_counter() - start)
                print(f"run {r}: faiss k=12    {time.perf_counter() - start:7.2f} s  ({load()})", flush=True)

    print("\nminimum over runs:")
    print(
        f"  wall: products {wall['products']:.2f} s, kNN metrics {wall['kNN metrics']:.2f} s "
        f"(beyond the products {wall['kNN metrics'] - wall['products']:.2f} s)"
        + (
            f", faiss {wall['faiss']:.2f} s, kNN / faiss {wall['kNN metrics'] / wall['faiss']:.2f}"
            if args.faiss
            else ""
        )
    )
    print("  CPU s of the kNN metrics: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    print(f"  {load()}")


if __name__ == "__main__":
    main()
