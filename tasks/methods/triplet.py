"""Triplet loss with semi-hard negatives (Schroff et al., "FaceNet: A Unified Embedding for Face
Recognition and Clustering", CVPR 2015), margin 0.2 on Euclidean distances of unit embeddings.

Uses pytorch-metric-learning: every triplet of the batch with d(a, p) < d(a, n) <= d(a, p) + margin
(FaceNet's semi-hard condition over all anchor-positive pairs), loss averaged over them. The
Revisiting-DML/ooDML miner instead draws one random positive and one random semi-hard negative per
anchor (any negative when none is semi-hard).
"""

from __future__ import annotations

from pytorch_metric_learning import losses, miners
from torch import Tensor

from tasks.methods.base import Hyperparameter, Method, MethodSpec


class Triplet(Method):
    def __init__(self, *, margin: float) -> None:
        super().__init__()
        self.loss = losses.TripletMarginLoss(margin=margin)
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def build(num_classes: int, embedding_dim: int, *, margin: float) -> Triplet:
    return Triplet(margin=margin)


SPEC = MethodSpec(
    name="triplet",
    build=build,
    hyperparameters={"margin": Hyperparameter(0.2, 0.05, 0.5)},
    description="Triplet loss + semi-hard mining: Schroff et al., FaceNet, CVPR 2015.",
)
