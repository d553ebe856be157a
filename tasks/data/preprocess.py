"""What a backbone expects of its images (``Preprocess``), and the two contracts the built-in backbones
follow (``IMAGENET``, ``GLYPH``). Plain Python: a backbone's declaration reads it without importing torch;
``tasks.data.transforms`` builds the transforms from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preprocess:
    """Input contract of a backbone: side length, evaluation resize, channels, normalisation and the
    resampling filter of its resizes (``bilinear`` or ``bicubic``: a timm model's pretrained config says which)."""

    size: int
    resize: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool = True  # horizontal flips are label-preserving for photos, not for glyphs
    interpolation: str = "bilinear"


IMAGENET = Preprocess(size=224, resize=256, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
GLYPH = Preprocess(size=32, resize=32, channels=1, mean=(0.5,), std=(0.5,), hflip=False)
