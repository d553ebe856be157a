"""Images held in memory as one uint8 array (the glyph demo), loadable without touching disk."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True, eq=False)
class ArrayLoader:
    """``LabelledImages.load`` over ``pixels`` (N x H x W greyscale uint8): image ``i`` is ``pixels[i]``.

    Data loaders recognise it and convert whole batches to tensors without a PIL round trip.
    """

    pixels: np.ndarray

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or self.pixels.dtype != np.uint8:
            raise ValueError(
                f"pixels must be an N x H x W uint8 array, got {self.pixels.dtype} {self.pixels.shape}"
            )

    def __call__(self, i: int) -> Image.Image:
        return Image.fromarray(self.pixels[i])
