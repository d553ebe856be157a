"""Synthetic JPEG image folders for the benchmarks: ``<root>/<class>/<image>.jpg`` (an ``imagefolder``).

``cub_like_size`` draws CUB-200-like image sizes (the long side 500 px, the short side 280-500 px, either
orientation). The content is a smooth random field plus mild noise, so a JPEG decodes at a cost near a
photo's (pure noise decodes slower, flat colour faster).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def cub_like_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) as CUB-200's images mostly are: 500 px on the long side."""
    short = int(rng.integers(280, 501))
    return (500, short) if rng.random() < 0.7 else (short, 500)


def synthetic_image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    coarse = rng.integers(0, 256, (max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    image += rng.integers(-12, 13, image.shape, dtype=np.int16)
    return Image.fromarray(image.clip(0, 255).astype(np.uint8))


def write_image_folder(
    root: Path,
    classes: int,
    per_class: int | tuple[int, int],
    *,
    size: tuple[int, int] | None = None,
    suffix: str = ".jpg",
    seed: int = 0,
) -> int:
    """``classes`` folders of ``per_class`` images (or a count drawn uniformly from a (low, high) range),
    each of ``size`` or CUB-like sizes; returns how many images were written."""
    rng = np.random.default_rng(seed)
    written = 0
    for c in range(classes):
        folder = root / f"class_{c:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        count = per_class if isinstance(per_class, int) else int(rng.integers(per_class[0], per_class[1] + 1))
        for k in range(count):
            image = synthetic_image(rng, size or cub_like_size(rng))
            image.save(folder / f"{k:03d}{suffix}", quality=90)
            written += 1
    return written
