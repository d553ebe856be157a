"""torchvision ResNets as backbones: the classifier replaced by identity, so the output is the
globally average-pooled last feature map (2048-d for ResNet50, 512-d for ResNet18)."""

from __future__ import annotations

import torchvision
from torch import nn


def resnet(depth: int) -> nn.Module:
    """A randomly initialised ``resnet{depth}`` whose forward returns pooled features."""
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    model.fc = nn.Identity()
    return model
