"""Circle loss (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization",
CVPR 2020) on the batch's pairs, with the paper's fine-grained retrieval setting m 0.4, gamma 80.

Uses pytorch-metric-learning's ``CircleLoss``, which follows the paper's pair-wise form.
"""

from __future__ import annotations

from pytorch_metric_learning import losses

from tasks.methods.base import LibraryLoss


class Circle(LibraryLoss):
    def __init__(self, *, m: float, gamma: float) -> None:
        super().__init__()
        self.loss = losses.CircleLoss(m=m, gamma=gamma)


def build(num_classes: int, embedding_dim: int, *, m: float, gamma: float) -> Circle:
    return Circle(m=m, gamma=gamma)
