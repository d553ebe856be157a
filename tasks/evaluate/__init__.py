"""Retrieval evaluation: exact Recall@k, mAP@R, mAP@1000 (ooDML) and NMI without an N x N matrix."""

from tasks.evaluate.metrics import map_at_1000_oodml, map_at_r, recall_at_k
from tasks.evaluate.nmi import kmeans_assign, normalized_mutual_info
from tasks.evaluate.ranks import PositiveRanks, positive_ranks
from tasks.evaluate.retrieval import retrieval_metrics

__all__ = [
    "PositiveRanks",
    "kmeans_assign",
    "map_at_1000_oodml",
    "map_at_r",
    "normalized_mutual_info",
    "positive_ranks",
    "recall_at_k",
    "retrieval_metrics",
]
