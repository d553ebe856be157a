"""Exact retrieval evaluation of an SOP-size embedding set: ours vs pytorch-metric-learning.

Synthetic set: class centres plus Gaussian noise, L2-normalised, 2-10 images per class (about 6, like
SOP's test split). Times ``retrieval_metrics`` (Recall@1,2,4,8, mAP@R, mAP@1000) against
pytorch-metric-learning's ``AccuracyCalculator`` (precision_at_1 + mean_average_precision_at_r, faiss
search) in the same process, prints both timings, the ratio and both values (which must agree).
``--nmi`` times k-means + NMI of both as well; ``--faiss`` times faiss's bare ``IndexFlatIP`` k=12 search.

    python benchmarks/bench_evaluate.py            # 70,000 x 512, about 11,700 classes
    python benchmarks/bench_evaluate.py --n 10000  # quicker
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import faiss
import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from tasks.evaluate import retrieval_metrics


def synthetic(n: int, d: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 11, n // 2)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=70_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--noise", type=float, default=2.2, help="noise std relative to a centre coordinate")
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the best time counts")
    parser.add_argument("--nmi", action="store_true", help="also time k-means + NMI of both")
    parser.add_argument("--faiss", action="store_true", help="also time faiss's bare IndexFlatIP k=12 search")
    args = parser.parse_args()

    x, labels = synthetic(args.n, args.d, args.noise, seed=0)
    print(
        f"{len(x)} x {x.shape[1]} embeddings, {labels.max() + 1} classes; torch threads {torch.get_num_threads()}"
    )
    xt, yt = torch.from_numpy(x), torch.from_numpy(labels)
    cpu = torch.device("cpu")
    pml = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count", device=cpu
    )
    t_pml, ref = timed(lambda: pml.get_accuracy(xt, yt), args.repeat)
    t_ours, ours = timed(lambda: retrieval_metrics(x, labels, with_nmi=False), args.repeat)
    print(
        f"pytorch-metric-learning  {t_pml:8.2f} s  P@1 {ref['precision_at_1']:.8f}  "
        f"MAP@R {ref['mean_average_precision_at_r']:.8f}"
    )
    print(
        f"ours                     {t_ours:8.2f} s  R@1 {ours['recall@1']:.8f}  MAP@R {ours['map@r']:.8f}  "
        f"(also R@2 {ours['recall@2']:.4f}, R@4 {ours['recall@4']:.4f}, R@8 {ours['recall@8']:.4f}, "
        f"mAP@1000 {ours['map@1000']:.4f})"
    )
    print(
        f"speed-up {t_pml / t_ours:.2f}x; |diff| P@1 {abs(ours['recall@1'] - ref['precision_at_1']):.1e}, "
        f"MAP@R {abs(ours['map@r'] - ref['mean_average_precision_at_r']):.1e}"
    )

    if args.nmi:
        pml_nmi = AccuracyCalculator(include=("NMI",), device=cpu)
        t_pml_nmi, ref_nmi = timed(lambda: pml_nmi.get_accuracy(xt, yt), args.repeat)
        t_nmi, ours_nmi = timed(lambda: retrieval_metrics(x, labels, with_nmi=True), args.repeat)
        print(
            f"NMI: pytorch-metric-learning {t_pml_nmi:.2f} s ({ref_nmi['NMI']:.4f}); "
            f"ours incl. retrieval {t_nmi:.2f} s ({ours_nmi['nmi']:.4f}, different k-means seed)"
        )
    if args.faiss:

        def search() -> dict:
            index = faiss.IndexFlatIP(x.shape[1])
            index.add(x)
            index.search(x, 12)
            return {}

        t_faiss, _ = timed(search, args.repeat)
        print(f"faiss IndexFlatIP k=12 bare search {t_faiss:.2f} s; ours / faiss {t_ours / t_faiss:.2f}")


if __name__ == "__main__":
    main()
