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


def resnet18() -> nn.Module:
    """``resnet(18)``: the backbone ``resnet18``."""
    return resnet(18)


def resnet50() -> nn.Module:
    """``resnet(50)``: the backbone ``resnet50``, the paper's."""
    return resnet(50)


def resnet101() -> nn.Module:
    """``resnet(101)``: the backbone ``resnet101``."""
    return resnet(101)
