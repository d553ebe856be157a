"""Image preprocessing: what a backbone expects, and the train/eval transforms built from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms import v2


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


def build_transform(pre: Preprocess, train: bool) -> Callable[[Image.Image], torch.Tensor]:
    """The paper's transforms: RandomResizedCrop + flip for training, Resize + CenterCrop for evaluation."""
    mode = "L" if pre.channels == 1 else "RGB"
    interpolation = v2.InterpolationMode(pre.interpolation)
    steps: list[Callable] = [lambda im: im.convert(mode), v2.PILToTensor()]
    if train:
        steps.append(
            v2.RandomResizedCrop(
                pre.size,
                scale=(0.5, 1.0) if pre.channels == 1 else (0.08, 1.0),
                interpolation=interpolation,
                antialias=True,
            )
        )
        if pre.hflip:
            steps.append(v2.RandomHorizontalFlip())
    else:
        steps += [v2.Resize(pre.resize, interpolation=interpolation, antialias=True), v2.CenterCrop(pre.size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)]
    return v2.Compose(steps)
