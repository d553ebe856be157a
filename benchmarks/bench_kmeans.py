"""NMI's k-means on an SOP-size set: ours (``tasks.evaluate.kmeans``) against ``faiss.Clustering``.

The set of ``bench_evaluate.py`` (73,568 x 512, L2-normalised, 2-11 images per class: 11,316 classes,
one cluster per class, as NMI clusters). In one process, timed in turn: faiss's k-means with an exact
``IndexFlatL2`` and the final search of every point (what pytorch-metric-learning's NMI runs, seed 1234,
20 iterations), then ours. Prints both times, their ratio, faiss's iterations, how many points the two
assign differently (0 unless two centroids tie within float32 rounding), both NMIs, the CPU and the load.

    python benchmarks/bench_kmeans.py               # SOP-size
    python benchmarks/bench_kmeans.py --n 36784     # half size
    python benchmarks/bench_kmeans.py --noise 0.5   # tighter classes: empty clusters are split
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
from bench_evaluate import PML_KMEANS_SEED, add_set_arguments, synthetic_set
from loadavg import cpu, load

from tasks.evaluate.kmeans import kmeans
from tasks.evaluate.nmi import normalized_mutual_info


def faiss_kmeans(x: np.ndarray, k: int, niter: int) -> tuple[np.ndarray, int]:
    """faiss's clusters (every point's nearest final centroid) and its iteration count."""
    params = faiss.ClusteringParameters()
    params.niter, params.seed, params.min_points_per_centroid = niter, PML_KMEANS_SEED, 1
    clustering = faiss.Clustering(x.shape[1], k, params)
    index = faiss.IndexFlatL2(x.shape[1])
    clustering.train(x, index)
    return index.search(x, 1)[1][:, 0], clustering.iteration_stats.size()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_set_arguments(parser)
    parser.add_argument("--niter", type=int, default=20)
    args = parser.parse_args()

    x, labels = synthetic_set(args)
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = int(labels.max()) + 1
    print(f"{len(x)} x {x.shape[1]}, {k} clusters; {cpu()}; faiss threads {faiss.omp_get_max_threads()}")
    print(f"before: {load()}", flush=True)
    start = time.perf_counter()
    theirs, iterations = faiss_kmeans(x, k, args.niter)
    t_faiss = time.perf_counter() - start
    print(
        f"faiss.Clustering + final search {t_faiss:7.2f} s  ({iterations} iterations; {load()})", flush=True
    )
    start = time.perf_counter()
    ours = kmeans(x, k, seed=PML_KMEANS_SEED, niter=args.niter)
    t_ours = time.perf_counter() - start
    print(f"ours                            {t_ours:7.2f} s  ({load()})", flush=True)
    print(
        f"\nfaiss / ours: {t_faiss / t_ours:.2f}x; points assigned differently: {int((ours != theirs).sum())}; "
        f"NMI faiss {normalized_mutual_info(labels, theirs):.9f}, ours {normalized_mutual_info(labels, ours):.9f}"
    )


if __name__ == "__main__":
    main()
