"""Proxy-Anchor loss (Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020); ooDML:
alpha 32, delta 0.1, proxy learning rate 2000 x the network's 1e-5 (the paper: 100 x 1e-4), i.e. 2e-2.

pytorch-metric-learning's ``ProxyAnchorLoss`` follows the paper and its code (positive term averaged
over the proxies with positives in the batch, negative term over all proxies; kaiming-normal proxies).
"""

from __future__ import annotations

from pytorch_metric_learning import losses
from torch import Tensor

from tasks.methods.base import Hyperparameter, Method, MethodSpec


class ProxyAnchor(Method):
    def __init__(self, num_classes: int, embedding_dim: int, *, alpha: float, delta: float, loss_lr: float):
        super().__init__(loss_lr)
        self.loss = losses.ProxyAnchorLoss(num_classes, embedding_dim, margin=delta, alpha=alpha)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels)


def build(num_classes: int, embedding_dim: int, *, alpha: float, delta: float, loss_lr: float) -> ProxyAnchor:
    return ProxyAnchor(num_classes, embedding_dim, alpha=alpha, delta=delta, loss_lr=loss_lr)


SPEC = MethodSpec(
    name="proxyanchor",
    build=build,
    hyperparameters={
        "alpha": Hyperparameter(32.0, 4.0, 64.0, log=True),
        "delta": Hyperparameter(0.1, 0.0, 0.5),
        "loss_lr": Hyperparameter(2e-2, 1e-4, 1e-1, log=True),
    },
    description="Proxy-Anchor loss: Kim et al., Proxy Anchor Loss for Deep Metric Learning, CVPR 2020.",
)
