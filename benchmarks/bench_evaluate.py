"""Exact retrieval evaluation of an SOP-size embedding set: ours vs pytorch-metric-learning and faiss.

Synthetic set: class centres plus Gaussian noise, L2-normalised, 2-11 images per class (6.5 on
average, like SOP's test split: 73,568 x 512 gives about 11,300 classes). In one process, timed in
turn: pytorch-metric-learning's ``AccuracyCalculator`` (precision_at_1, mean_average_precision_at_r,
NMI; its faiss search and k-means), our ``retrieval_metrics`` with NMI (what ``oodml evaluate``
computes) and without (``--no-nmi``: Recall@1,2,4,8, mAP@R, mAP@1000), faiss's bare exact
``IndexFlatIP`` k=12 search, and ``oodml evaluate --no-nmi`` as a whole process (interpreter start,
imports, the npz load: the set written uncompressed beforehand, as ``np.savez`` writes it). Prints each
time, the ratios the goals name (docs/performance.md: ``oodml evaluate --no-nmi`` whole process / faiss
bare search at most 0.65, the in-process kNN metrics beside it; library / whole evaluation at least 2),
the values side by side (they must agree: our k-means uses the library's seed, 1234, so NMI agrees too)
and the load average before and after: on a loaded box the library slows down far more than our code.

    python benchmarks/bench_evaluate.py                # 73,568 x 512, SOP-size
    python benchmarks/bench_evaluate.py --n 36784      # half size
    python benchmarks/bench_evaluate.py --device cuda  # ours on a GPU (the library and faiss stay on the CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch
from loadavg import load
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from tasks.evaluate import retrieval_metrics

PML_KMEANS_SEED = 1234  # faiss.Kmeans's default seed, which the library's k-means keeps
ROOT = Path(__file__).resolve().parent.parent


def synthetic(n: int, d: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 12, n // 2)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    labels = np.repeat(np.arange(len(sizes)), sizes)[:n]
    if np.bincount(labels)[-1] == 1:  # no singleton classes: PML would leave them out of P@1
        labels[-1] = labels[-2]
    centres = rng.normal(size=(len(sizes), d)).astype(np.float32)
    x = centres[labels] + noise * rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def timed(fn: Callable[[], dict], repeat: int) -> tuple[float, dict]:
    best, out = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The synthetic set's options (``--n``, ``--d``, ``--noise``), SOP-size by default; ``synthetic_set``
    builds it."""
    parser.add_argument("--n", type=int, default=73_568)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--noise", type=float, default=2.2, help="noise std relative to a centre coordinate")


def synthetic_set(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic set ``add_set_arguments``' options describe (seed 0)."""
    return synthetic(args.n, args.d, args.noise, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_set_arguments(parser)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best time counts")
    parser.add_argument("--device", default="cpu", help="device of our evaluation (default cpu)")
    parser.add_argument("--no-library", action="store_true", help="skip pytorch-metric-learning (slow)")
    args = parser.parse_args()

    x, labels = synthetic_set(args)
    print(
        f"{len(x)} x {x.shape[1]} embeddings, {labels.max() + 1} classes; torch threads "
        f"{torch.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()}, {os.cpu_count()} CPUs; "
        f"before: {load()}",
        flush=True,
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)

    def ours(with_nmi: bool) -> dict:
        return retrieval_metrics(x, labels, with_nmi=with_nmi, seed=PML_KMEANS_SEED, device=args.device)

    def faiss_search() -> dict:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        index.search(x, 12)
        return {}

    t_knn, knn = timed(lambda: ours(False), args.repeat)
    print(f"ours, kNN metrics (--no-nmi)   {t_knn:8.2f} s  ({load()})", flush=True)
    t_faiss, _ = timed(faiss_search, args.repeat)
    print(f"faiss IndexFlatIP k=12 search  {t_faiss:8.2f} s  ({load()})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.npz"
        np.savez(path, embeddings=x, labels=labels)
        command = [sys.executable, "-m", "study.cli", "evaluate", str(path), "--no-nmi", "--json"]
        command += ["--device", args.device]

        def whole_process() -> dict:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
            return json.loads(done.stdout.strip().splitlines()[-1])

        t_process, process = timed(whole_process, args.repeat)
    print(f"oodml evaluate --no-nmi process {t_process:7.2f} s  ({load()})", flush=True)
    t_all, full = timed(lambda: ours(True), args.repeat)
    print(f"ours, whole evaluation         {t_all:8.2f} s  ({load()})", flush=True)
    if not args.no_library:
        calc = AccuracyCalculator(
            include=("precision_at_1", "mean_average_precision_at_r", "NMI"),
            k="max_bin_count",
            device=torch.device("cpu"),
        )
        t_pml, ref = timed(lambda: calc.get_accuracy(xt, yt), args.repeat)
        print(f"pytorch-metric-learning        {t_pml:8.2f} s  ({load()})", flush=True)

    print(
        f"\noodml evaluate --no-nmi, whole process / faiss bare search: {t_process / t_faiss:.2f}  (goal <= 0.65;"
        f" in-process kNN metrics / faiss: {t_knn / t_faiss:.2f}; the process's values equal the in-process "
        f"ones: {process == knn})\n"
        f"values: R@1 {full['recall@1']:.8f}  mAP@R {full['map@r']:.8f}  NMI {full['nmi']:.8f}  "
        f"(also R@2 {full['recall@2']:.4f}, R@4 {full['recall@4']:.4f}, R@8 {full['recall@8']:.4f}, "
        f"mAP@1000 {full['map@1000']:.4f}); kNN-only run equal: {knn == {k: full[k] for k in knn}}"
    )
    if not args.no_library:
        diffs = {
            "P@1": abs(full["recall@1"] - ref["precision_at_1"]),
            "MAP@R": abs(full["map@r"] - ref["mean_average_precision_at_r"]),
            "NMI": abs(full["nmi"] - ref["NMI"]),
        }
        print(
            f"library / whole evaluation: {t_pml / t_all:.2f}x  (goal >= 1.65)\n"
            f"library values: P@1 {ref['precision_at_1']:.8f}  MAP@R {ref['mean_average_precision_at_r']:.8f}  "
            f"NMI {ref['NMI']:.8f}; |ours - library| " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
        )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
