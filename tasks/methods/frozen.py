"""The frozen baseline: the pretrained backbone's pooled features, L2-normalised, with no training.

It scores a published model (DINOv2, CLIP, an ImageNet ResNet: ``model.backbone: timm:<name>``) on the
same splits and budgets as the DML methods trained on it. Its embedding head is a linear layer
initialised to the identity (``feature_dim`` -> ``feature_dim``, zero bias), so the evaluated embedding is
exactly ``normalize(model.features(x))``; :attr:`trains` is False, so the training loop runs no epoch and
no optimizer step whatever ``training.epochs`` says, and the trial records ``selected_epoch`` -1 (the
model as built). The model's ``embedding_dim`` setting does not apply: the embedding is the feature.

Few-shot adaptation (docs/protocol.md section 5) starts from these features: ``fewshot.mode: head`` (the
default) trains a copy of the identity-initialised layer on the support features, so an episode measures
what adapting a linear map from the zero-shot embedding gains; ``linear_probe`` trains a freshly
initialised layer of the same shape; ``full`` also fine-tunes the backbone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tasks.methods.base import Method


class Frozen(Method):
    """No loss to train: the model as built is the result."""

    trains = False

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return embeddings.new_zeros(())  # nothing to learn; the training loop never calls it

    def embedding_head(self, feature_dim: int, embedding_dim: int) -> nn.Module:
        head = nn.Linear(feature_dim, feature_dim)
        with torch.no_grad():
            nn.init.eye_(head.weight)
            head.bias.zero_()
        return head


def build(*, num_classes: int, embedding_dim: int) -> Frozen:
    return Frozen()
