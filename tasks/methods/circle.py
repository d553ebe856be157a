"""Circle loss (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity Optimization",
CVPR 2020) on the batch's pairs, with the paper's fine-grained retrieval setting m 0.4, gamma 80.

Uses pytorch-metric-learning's ``CircleLoss``, which follows the paper's pair-wise form.
"""

from __future__ import annotations

from pytorch_metric_learning import losses

from tasks.methods.base import Hyperparameter, LibraryLoss, MethodSpec


class Circle(LibraryLoss):
    def __init__(self, *, m: float, gamma: float) -> None:
        super().__init__()
        self.loss = losses.CircleLoss(m=m, gamma=gamma)


def build(num_classes: int, embedding_dim: int, *, m: float, gamma: float) -> Circle:
    return Circle(m=m, gamma=gamma)


SPEC = MethodSpec(
    name="circle",
    build=build,
    hyperparameters={
        "m": Hyperparameter(0.4, 0.1, 0.5),
        "gamma": Hyperparameter(80.0, 16.0, 256.0, log=True),
    },
    description="Circle loss: Sun et al., Circle Loss: A Unified Perspective of Pair Similarity "
    "Optimization, CVPR 2020.",
)
