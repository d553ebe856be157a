"""Clustering quality: k-means with one cluster per class, scored by normalized mutual information.

faiss is imported when k-means runs: ``oodml evaluate --no-nmi`` does not load it (0.15-0.4 s)."""

from __future__ import annotations

import numpy as np

from tasks.evaluate.kmeans import kmeans


def faiss_gpus() -> int:
    """GPUs faiss can use: 0 with the default ``faiss-cpu`` wheel, >0 with ``faiss-gpu-cu12`` on a GPU."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def kmeans_assign(
    x: np.ndarray, n_clusters: int, *, seed: int = 0, niter: int = 20, gpu: int | None = None
) -> np.ndarray:
    """Cluster index of every row after seeded faiss k-means (Euclidean, ``niter`` iterations).

    On the CPU: ``tasks.evaluate.kmeans`` (faiss's algorithm, each assignment step searching only what
    can have changed). ``gpu``: the CUDA device index to cluster on with faiss-gpu (same algorithm, float
    sums in another order, so the clusters may differ slightly from the CPU's); None, or a faiss without
    GPU support (``faiss_gpus() == 0``), clusters on the CPU.
    """
    if gpu is None or faiss_gpus() == 0:
        return kmeans(x, n_clusters, seed=seed, niter=niter)
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    d = x.shape[1]
    params = faiss.ClusteringParameters()
    params.niter, params.seed = niter, seed
    params.min_points_per_centroid = 1  # only silences faiss's warning for few points per class (e.g. SOP)
    clustering = faiss.Clustering(d, n_clusters, params)
    config = faiss.GpuIndexFlatConfig()
    config.device = gpu
    index = faiss.GpuIndexFlatL2(faiss.StandardGpuResources(), d, config)
    clustering.train(x, index)  # leaves the final centroids in the index, as faiss.Kmeans does
    _, assign = index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def normalized_mutual_info(labels: np.ndarray, clusters: np.ndarray) -> float:
    """NMI with arithmetic-mean normalisation: ``I(U, V) / ((H(U) + H(V)) / 2)``.

    Same convention as scikit-learn's default: 1.0 when both labelings are a single cluster.
    """
    _, u = np.unique(labels, return_inverse=True)
    _, v = np.unique(clusters, return_inverse=True)
    if u.max() == 0 and v.max() == 0:
        return 1.0
    n = len(u)
    width = v.max() + 1
    pair, n_uv = np.unique(u * width + v, return_counts=True)
    a, b = np.bincount(u), np.bincount(v)
    outer = a[pair // width] * b[pair % width].astype(np.float64)
    mi = np.sum(n_uv / n * (np.log(n_uv * n) - np.log(outer)))
    h_u = -np.sum(a / n * np.log(a / n))
    h_v = -np.sum(b / n * np.log(b / n))
    return float(max(mi, 0.0) / max((h_u + h_v) / 2, np.finfo(np.float64).eps))
