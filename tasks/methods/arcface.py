"""ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019);
ooDML: angular margin 0.5 rad, scale 16, class-weight learning rate 5e-4.

Variant ``original`` (default; ooDML's ``criteria/arcface.py``, after the paper's pseudocode): class
weights W (C, D) initialised uniform in ±1/sqrt(D); with the embeddings x as given (unit rows) and
c_ij = clamp(<x_i, W_j / |W_j|>, 1e-10, 1 - 1e-10) — every cosine, not only the target's, so a
negative cosine becomes ~0 and passes no gradient — the logits are s * c_ij for j != y_i and
s * cos(arccos(c_iy) + m) for the target class, and

    L = 1/B sum_i cross_entropy(logits_i, y_i)

with cos(theta + m) throughout (no monotonic fix past theta = pi - m).

Variant ``pml`` (pytorch-metric-learning's ``ArcFaceLoss``, margin passed in degrees, weights
initialised as above): cosines clamped to [-1, 1] only inside arccos, and for theta > pi - m the target
logit is cos(theta) - m sin(m), which keeps it monotonic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor, nn

from tasks.methods.base import LibraryLoss, Method, VariantBuilder

COSINE_CLAMP = 1e-10


class ArcFace(Method):
    """ooDML's ArcFace; ``class_weights`` (C, D) train at ``loss_lr``."""

    def __init__(self, num_classes: int, embedding_dim: int, *, margin: float, scale: float, loss_lr: float):
        super().__init__(loss_lr)
        bound = 1 / math.sqrt(embedding_dim)
        self.class_weights = nn.Parameter(torch.empty(num_classes, embedding_dim).uniform_(-bound, bound))
        self.margin = margin
        self.scale = scale

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        weights = F.normalize(self.class_weights, dim=1)
        cos = (embeddings @ weights.T).clamp(COSINE_CLAMP, 1 - COSINE_CLAMP)
        target = cos.gather(1, labels[:, None])
        with_margin = torch.cos(torch.acos(target) + self.margin)
        own = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(own, with_margin, cos)
        return F.cross_entropy(logits, labels)


class PMLArcFace(LibraryLoss):
    """pytorch-metric-learning's ArcFace (variant ``pml``), margin in radians converted to degrees."""

    def __init__(self, num_classes: int, embedding_dim: int, *, margin: float, scale: float, loss_lr: float):
        super().__init__(loss_lr)
        bound = 1 / math.sqrt(embedding_dim)
        self.margin = margin
        self.scale = scale
        self.loss = losses.ArcFaceLoss(
            num_classes,
            embedding_dim,
            margin=math.degrees(margin),
            scale=scale,
            weight_init_func=c_f.TorchInitWrapper(torch.nn.init.uniform_, a=-bound, b=bound),
        )


build = VariantBuilder(original=ArcFace, pml=PMLArcFace)
