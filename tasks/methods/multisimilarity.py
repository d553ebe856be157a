"""Multi-similarity loss with its pair miner (Wang et al., "Multi-Similarity Loss with General Pair
Weighting for Deep Metric Learning", CVPR 2019); ooDML: alpha 2, beta 40, base 0.5, epsilon 0.1.

pytorch-metric-learning's loss and miner follow the paper (mean over all anchors, an anchor without
mined pairs contributing 0). The ooDML code averages the positive and negative terms separately over
the anchors that have mined pairs of that kind, which weighs anchors slightly differently.
"""

from __future__ import annotations

from pytorch_metric_learning import losses, miners
from torch import Tensor

from tasks.methods.base import Hyperparameter, Method, MethodSpec


class MultiSimilarity(Method):
    def __init__(self, *, alpha: float, beta: float, base: float, epsilon: float) -> None:
        super().__init__()
        self.loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
        self.miner = miners.MultiSimilarityMiner(epsilon=epsilon)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def build(
    num_classes: int, embedding_dim: int, *, alpha: float, beta: float, base: float, epsilon: float
) -> MultiSimilarity:
    return MultiSimilarity(alpha=alpha, beta=beta, base=base, epsilon=epsilon)


SPEC = MethodSpec(
    name="multisimilarity",
    build=build,
    hyperparameters={
        "alpha": Hyperparameter(2.0, 0.5, 10.0, log=True),
        "beta": Hyperparameter(40.0, 10.0, 80.0, log=True),
        "base": Hyperparameter(0.5, 0.0, 1.0),
        "epsilon": Hyperparameter(0.1, 0.0, 0.5),
    },
    description="Multi-similarity loss + miner: Wang et al., Multi-Similarity Loss with General Pair "
    "Weighting for Deep Metric Learning, CVPR 2019.",
)
