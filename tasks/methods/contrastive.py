"""Contrastive loss (Hadsell et al., "Dimensionality Reduction by Learning an Invariant Mapping",
CVPR 2006) over all pairs of the batch: [d - m_pos]_+ for positives, [m_neg - d]_+ for negatives,
with ooDML's margins 0 and 1 on Euclidean distances.

Uses pytorch-metric-learning's ``ContrastiveLoss`` (unsquared hinge terms as in the ooDML code; each of
the two terms averaged over its non-zero pairs). ooDML feeds it distance-weighted triplets instead of
all pairs.
"""

from __future__ import annotations

from pytorch_metric_learning import losses
from torch import Tensor

from tasks.methods.base import Hyperparameter, Method, MethodSpec


class Contrastive(Method):
    def __init__(self, *, pos_margin: float, neg_margin: float) -> None:
        super().__init__()
        self.loss = losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels)


def build(num_classes: int, embedding_dim: int, *, pos_margin: float, neg_margin: float) -> Contrastive:
    return Contrastive(pos_margin=pos_margin, neg_margin=neg_margin)


SPEC = MethodSpec(
    name="contrastive",
    build=build,
    hyperparameters={
        "pos_margin": Hyperparameter(0.0, 0.0, 0.5),
        "neg_margin": Hyperparameter(1.0, 0.5, 1.6),
    },
    description="Contrastive loss: Hadsell et al., Dimensionality Reduction by Learning an Invariant "
    "Mapping, CVPR 2006.",
)
