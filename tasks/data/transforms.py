"""Image preprocessing: what a backbone expects, and the train/eval transforms built from it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from tasks.data.preprocess import GLYPH as GLYPH
from tasks.data.preprocess import IMAGENET as IMAGENET
from tasks.data.preprocess import Preprocess


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
