"""The small CNN for the 32x32 greyscale glyph demo dataset (``tasks.data.glyphs``): four blocks of
3x3 convolution, BatchNorm, ReLU and 2x2 max-pooling (32-64-128-128 channels), then global average
pooling to a 128-d feature. Trained from scratch; no pretrained weights exist for it.
"""

from __future__ import annotations

from torch import nn

CHANNELS = (32, 64, 128, 128)


def glyph_cnn(in_channels: int = 1) -> nn.Sequential:
    """Image (B, in_channels, 32, 32) -> pooled feature (B, 128)."""
    layers: list[nn.Module] = []
    for out in CHANNELS:
        layers += [
            nn.Conv2d(in_channels, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        in_channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
