"""The built-in backbones, declared without importing them: input contract, sizes, pretrained source, and
the function that creates the module named by reference, imported when the backbone is first built
(``tasks.models.registry.register_backbone``). The URLs are torchvision's ``ResNet*_Weights.IMAGENET1K_V1``
(tests/models check they agree)."""

from __future__ import annotations

from tasks.data.preprocess import GLYPH, IMAGENET
from tasks.models.registry import BackboneSpec, register_backbone
from tasks.models.weights import HubCheckpoint

TORCHVISION = "https://download.pytorch.org/models"

register_backbone(
    BackboneSpec(
        "resnet50",
        IMAGENET,
        2048,
        512,
        "tasks.models.resnet:resnet50",
        HubCheckpoint(f"{TORCHVISION}/resnet50-0676ba61.pth"),
        ("fc.",),
    )
)
register_backbone(  # the original's SOP S2SD runs (resnet101_frozen_normalize: these ImageNet weights)
    BackboneSpec(
        "resnet101",
        IMAGENET,
        2048,
        512,
        "tasks.models.resnet:resnet101",
        HubCheckpoint(f"{TORCHVISION}/resnet101-63fe2227.pth"),
        ("fc.",),
    )
)
register_backbone(
    BackboneSpec(
        "resnet18",
        IMAGENET,
        512,
        512,
        "tasks.models.resnet:resnet18",
        HubCheckpoint(f"{TORCHVISION}/resnet18-f37072fd.pth"),
        ("fc.",),
    )
)
register_backbone(
    BackboneSpec("glyph_cnn", GLYPH, 128, 64, "tasks.models.glyph_cnn:glyph_cnn", None, freeze_bn=False)
)
