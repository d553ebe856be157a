"""ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019);
ooDML: angular margin 0.5 rad, scale 16, class-weight learning rate 5e-4.

pytorch-metric-learning's ``ArcFaceLoss`` takes the margin in degrees: 0.5 rad is passed as 28.65°.
Its class weights are initialised uniform in ±1/sqrt(D) as in the ooDML code (PML's default, a unit
normal, makes Adam's steps far smaller relative to the weights' norm). PML also keeps the logit
monotonic past theta = pi - m, where the paper's pseudocode and ooDML use cos(theta + m) throughout;
the two differ only for samples almost opposite their class centre.
"""

from __future__ import annotations

import math

import torch
from pytorch_metric_learning import losses
from pytorch_metric_learning.utils import common_functions as c_f
from torch import Tensor

from tasks.methods.base import Hyperparameter, Method, MethodSpec


class ArcFace(Method):
    def __init__(self, num_classes: int, embedding_dim: int, *, margin: float, scale: float, loss_lr: float):
        super().__init__(loss_lr)
        bound = 1 / math.sqrt(embedding_dim)
        self.loss = losses.ArcFaceLoss(
            num_classes,
            embedding_dim,
            margin=math.degrees(margin),
            scale=scale,
            weight_init_func=c_f.TorchInitWrapper(torch.nn.init.uniform_, a=-bound, b=bound),
        )

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels)


def build(num_classes: int, embedding_dim: int, *, margin: float, scale: float, loss_lr: float) -> ArcFace:
    return ArcFace(num_classes, embedding_dim, margin=margin, scale=scale, loss_lr=loss_lr)


SPEC = MethodSpec(
    name="arcface",
    build=build,
    hyperparameters={
        "margin": Hyperparameter(0.5, 0.1, 1.0),
        "scale": Hyperparameter(16.0, 4.0, 64.0, log=True),
        "loss_lr": Hyperparameter(5e-4, 1e-5, 1e-2, log=True),
    },
    description="ArcFace (margin in radians): Deng et al., ArcFace: Additive Angular Margin Loss for Deep "
    "Face Recognition, CVPR 2019.",
)
