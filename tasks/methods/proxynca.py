"""ProxyNCA (Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies", ICCV 2017):
one learnable proxy per class and, with d the squared Euclidean distance,

    l(x) = -log( exp(-d(x, p_y)) / sum_{z != y} exp(-d(x, p_z)) ).

Written here because pytorch-metric-learning's ``ProxyNCALoss`` keeps the positive proxy in the
denominator (plain NCA). As in the ooDML code, embeddings and proxies are normalised and scaled to a
sphere of radius ``scale`` (3) before the distances, proxies start as N(0, 1/64) and train at 50 x the
network's 1e-5, i.e. 5e-4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.methods.base import Hyperparameter, Method, MethodSpec


class ProxyNCA(Method):
    def __init__(self, num_classes: int, embedding_dim: int, *, scale: float, loss_lr: float) -> None:
        super().__init__(loss_lr)
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_dim) / 8)
        self.scale = scale

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        x = self.scale * F.normalize(embeddings, dim=1)
        proxies = self.scale * F.normalize(self.proxies, dim=1)
        d = (x.pow(2).sum(1, keepdim=True) + proxies.pow(2).sum(1) - 2 * x @ proxies.T).clamp_min(0)
        own = F.one_hot(labels, len(proxies)).bool()
        return (d[own] + torch.logsumexp(-d.masked_fill(own, float("inf")), dim=1)).mean()


def build(num_classes: int, embedding_dim: int, *, scale: float, loss_lr: float) -> ProxyNCA:
    return ProxyNCA(num_classes, embedding_dim, scale=scale, loss_lr=loss_lr)


SPEC = MethodSpec(
    name="proxynca",
    build=build,
    hyperparameters={
        "scale": Hyperparameter(3.0, 1.0, 8.0),
        "loss_lr": Hyperparameter(5e-4, 1e-5, 1e-1, log=True),
    },
    description="ProxyNCA: Movshovitz-Attias et al., No Fuss Distance Metric Learning using Proxies, "
    "ICCV 2017.",
)
