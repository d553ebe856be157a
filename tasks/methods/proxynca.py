"""ProxyNCA (Movshovitz-Attias et al., "No Fuss Distance Metric Learning using Proxies", ICCV 2017), as
ooDML's ``criteria/proxynca.py`` computes it with its default options (squared Euclidean distances,
temperature 1, own proxy excluded from the denominator): one learnable proxy per class, embeddings and
proxies normalised and scaled to a sphere of radius ``scale`` (3), and with d the squared distance,

    L = 1/B sum_i d(x_i, p_{y_i})  +  1/B sum_i logsumexp_{z != y_i} -d(x_i, p_z)

Proxies start as N(0, 1)/8 and train at lr x lrmulti = 1e-5 x 50 = 5e-4 (ooDML's ``parameters.py``).
pytorch-metric-learning's ``ProxyNCALoss`` keeps the own proxy in the denominator (plain NCA); not a
variant here, as ooDML's definition is the paper's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.methods.base import Method


class ProxyNCA(Method):
    def __init__(self, num_classes: int, embedding_dim: int, *, scale: float, loss_lr: float) -> None:
        super().__init__(loss_lr)
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_dim) / 8)
        self.scale = scale

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        x = self.scale * F.normalize(embeddings, dim=1)
        proxies = self.scale * F.normalize(self.proxies, dim=1)
        d = (x[:, None, :] - proxies[None, :, :]).pow(2).sum(-1)  # (B, C)
        own = F.one_hot(labels, len(proxies)).bool()
        return d[own].mean() + torch.logsumexp(-d.masked_fill(own, float("inf")), dim=1).mean()


def build(num_classes: int, embedding_dim: int, *, scale: float, loss_lr: float) -> ProxyNCA:
    return ProxyNCA(num_classes, embedding_dim, scale=scale, loss_lr=loss_lr)
