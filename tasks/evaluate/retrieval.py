"""The evaluation entry point: retrieval metrics and NMI of a labelled embedding set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tasks.evaluate.metrics import MAP_DEPTH, map_at_1000_oodml, map_at_r, recall_at_k
from tasks.evaluate.nmi import faiss_gpus, kmeans_assign, normalized_mutual_info
from tasks.evaluate.ranks import one_thread_on_cpu, positive_ranks

DEFAULT_KS = (1, 2, 4, 8)


def retrieval_metrics(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | Sequence,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    with_nmi: bool = True,
    metric: str = "ip",
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Recall@k for each k, mAP@R, mAP@1000 (ooDML) and NMI, by exact search.

    Query = every image, gallery = the other images (the query itself is excluded by index; exact
    duplicates of it count). ``metric`` is "ip" (inner product; use L2-normalised embeddings for
    cosine) or "l2". Ties in similarity rank the lower gallery index first. Labels may be any
    sortable values (ints, strings). ``device`` is where the ranks and metrics are computed (default:
    the tensor's device, else the CPU); the values are the same on every device (full float32
    products, TF32 off). MPS has no float64, so its evaluation runs on the CPU. k-means runs on that
    GPU when faiss has GPU support (``faiss-gpu-cu12``), else on the CPU. Keys: ``recall@K``,
    ``map@r``, ``map@1000``, ``nmi`` (if ``with_nmi``). ``progress``: show the ranking as it runs.
    """
    x = _embeddings(embeddings, device)
    codes = _codes(labels, len(x))
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    with one_thread_on_cpu(x.device):
        if not torch.isfinite(x).all():
            raise ValueError("embeddings contain non-finite values")
        pr = positive_ranks(x, codes, depth=max(max(ks), MAP_DEPTH), metric=metric, progress=progress)
        out = {f"recall@{k}": recall_at_k(pr, k) for k in ks}
        out["map@r"] = map_at_r(pr)
        out["map@1000"] = map_at_1000_oodml(pr)
    if with_nmi:
        gpu = (x.device.index or 0) if x.device.type == "cuda" and faiss_gpus() > 0 else None
        clusters = kmeans_assign(x.cpu().numpy(), int(codes.max()) + 1, seed=seed, gpu=gpu)
        out["nmi"] = normalized_mutual_info(codes, clusters)
    return out


def _embeddings(embeddings: np.ndarray | torch.Tensor, device: str | torch.device | None) -> torch.Tensor:
    x = torch.as_tensor(embeddings).detach()
    target = torch.device(device) if device is not None else x.device
    if target.type == "mps":  # no float64 for the metrics' sums
        target = torch.device("cpu")
    x = x.to(device=target, dtype=torch.float32).contiguous()
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must be an (n, d) array with n >= 2, got shape {tuple(x.shape)}")
    return x


def _codes(labels: np.ndarray | Sequence, n: int) -> np.ndarray:
    """Class codes 0..C-1 of the labels (any sortable values)."""
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the embeddings, got {arr.shape}")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.astype(np.int64)
