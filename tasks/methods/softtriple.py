"""SoftTriple loss (Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet Sampling",
ICCV 2019): K centres per class; the similarity to class c is the softmax(x·w/gamma)-weighted mean of
x·w over its centres, and

    L = CE(lambda * (S - delta * onehot(y)), y) + tau * sum_c sum_{t<s} ||w_c^t - w_c^s|| / (C K (K-1))

with the paper's lambda 20, gamma 0.1, delta 0.01, tau 0.2, K 10 and centre learning rate 1e-2.
Written here because pytorch-metric-learning's ``SoftTripleLoss`` omits the centre regulariser. The
centre distances get 1e-5 under the square root (as in the authors' code) so that coinciding
centres have a finite gradient; the paper's adaptive pruning of centres is not done.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.methods.base import Method


class SoftTriple(Method):
    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        centers_per_class: int,
        la: float,
        gamma: float,
        delta: float,
        tau: float,
        loss_lr: float,
    ) -> None:
        super().__init__(loss_lr)
        bound = 1 / math.sqrt(num_classes * centers_per_class)
        self.centers = nn.Parameter(
            torch.empty(num_classes, centers_per_class, embedding_dim).uniform_(-bound, bound)
        )
        self.la, self.gamma, self.delta, self.tau = la, gamma, delta, tau

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        centers = F.normalize(self.centers, dim=2)
        sims = torch.einsum("bd,ckd->bck", embeddings, centers)
        class_sims = (torch.softmax(sims / self.gamma, dim=2) * sims).sum(2)
        margin = self.delta * F.one_hot(labels, len(centers))
        loss = F.cross_entropy(self.la * (class_sims - margin), labels)
        num_classes, k, _ = centers.shape
        if self.tau == 0 or k == 1:
            return loss
        gram = centers @ centers.transpose(1, 2)
        upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=gram.device), diagonal=1)
        spread = (2 + 1e-5 - 2 * gram[:, upper]).sqrt().sum()
        return loss + self.tau * spread / (num_classes * k * (k - 1))
