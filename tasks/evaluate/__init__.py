"""Retrieval evaluation: exact Recall@k, mAP@R, mAP@1000 (ooDML) and NMI without an N x N matrix.

The names load their module on first use (``tasks.lazy``): ``oodml evaluate --help`` imports no torch."""

from __future__ import annotations

from tasks.lazy import lazy_exports

_EXPORTS = {
    "PositiveRanks": "ranks",
    "kmeans_assign": "nmi",
    "map_at_1000_oodml": "metrics",
    "map_at_r": "metrics",
    "normalized_mutual_info": "nmi",
    "positive_ranks": "ranks",
    "recall_at_k": "metrics",
    "retrieval_metrics": "retrieval",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
