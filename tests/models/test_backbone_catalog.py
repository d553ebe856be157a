"""The built-in backbones' declarations (tasks/models/catalog.py) agree with torchvision: each pretrained
URL is its ``ResNet*_Weights.IMAGENET1K_V1`` one (what each ``create`` builds is checked in
tests/test_registry.py)."""

from __future__ import annotations

import pytest
import torchvision

from tasks.models import BACKBONES


@pytest.mark.parametrize("depth", [18, 50, 101])
def test_each_resnet_declares_torchvisions_imagenet_weights(depth):
    weights = getattr(torchvision.models, f"ResNet{depth}_Weights").IMAGENET1K_V1
    assert BACKBONES[f"resnet{depth}"].weights.url == weights.url
