"""Proxy-Anchor loss (Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020); ooDML:
alpha 32, delta 0.1, proxy learning rate lr x lrmulti = 1e-5 x 2000 = 2e-2 (its ``parameters.py``).

Variant ``original`` (default; ooDML's ``criteria/oproxy.py``, mode ``anchor``, cosine): proxies
start as N(0, 1)/8; with x_i = e_i / |e_i| (the loss normalises its input) and p_c the normalised proxies,
s_ic = <x_i, p_c>,

    L =   1/B   sum_j          softplus( logsumexp_{i: y_i = y_j} -alpha (s_{i y_j} - delta) )
        + 1/|C-| sum_{c in C-} softplus( logsumexp_{i: y_i != c}   alpha (s_ic + delta) )

The positive term is one entry per sample j (its class's proxy), so averaged over samples a class
weighs by its count in the batch; C- are the proxies with at least one sample of another class in the
batch (all of them but when the batch holds one class only; with none, the term is softplus(0), as
in ooDML).

Variant ``pml`` (pytorch-metric-learning's ``ProxyAnchorLoss``, after the paper and its code): positive
term averaged over the proxies with positives in the batch, negative over all proxies;
kaiming-normal proxies.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import Tensor, nn

from tasks.methods.base import LibraryLoss, Method, VariantBuilder


class ProxyAnchor(Method):
    """ooDML's Proxy-Anchor loss; ``proxies`` (C, D) train at ``loss_lr``."""

    def __init__(self, num_classes: int, embedding_dim: int, *, alpha: float, delta: float, loss_lr: float):
        super().__init__(loss_lr)
        self.proxies = nn.Parameter(torch.randn(num_classes, embedding_dim) / 8)
        self.alpha = alpha
        self.delta = delta

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        s = F.normalize(embeddings, dim=1) @ F.normalize(self.proxies, dim=1).T  # (B, C)
        own = F.one_hot(labels, s.shape[1]).bool()
        # per proxy c: logsumexp over the samples of class c (-inf for classes absent from the batch)
        pos_lse = (-self.alpha * (s - self.delta)).masked_fill(~own, float("-inf")).logsumexp(0)
        pos = F.softplus(pos_lse[labels]).mean()
        other = ~own
        proxies = other.any(0)
        if proxies.any():
            neg_w = (self.alpha * (s + self.delta))[:, proxies].masked_fill(~other[:, proxies], float("-inf"))
            neg = F.softplus(neg_w.logsumexp(0)).mean()
        else:
            neg = s.sum() * 0.0 + math.log(2.0)
        return pos + neg


class PMLProxyAnchor(LibraryLoss):
    """pytorch-metric-learning's Proxy-Anchor loss (variant ``pml``)."""

    def __init__(self, num_classes: int, embedding_dim: int, *, alpha: float, delta: float, loss_lr: float):
        super().__init__(loss_lr)
        self.alpha = alpha
        self.delta = delta
        self.loss = losses.ProxyAnchorLoss(num_classes, embedding_dim, margin=delta, alpha=alpha)


build = VariantBuilder(original=ProxyAnchor, pml=PMLProxyAnchor)
