"""Datasets, transforms, samplers and torch datasets; ``build_dataset`` resolves a name through ``DATASETS``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.data.arrays import ArrayLoader
from tasks.data.base import DatasetError, LabelledImages
from tasks.data.folders import load_cars196, load_cub200, load_imagefolder
from tasks.data.glyphs import glyph_heldout, load_glyphs
from tasks.data.samplers import ClassBalancedBatchSampler
from tasks.data.sop import load_sop
from tasks.data.torch_dataset import ArrayImageSubset, ImageSubset, image_dataset
from tasks.data.verify import UnreadableImage, select_images, verify_images

DATASETS: dict[str, Callable[..., LabelledImages]] = {
    "cub200": load_cub200,
    "cars196": load_cars196,
    "sop": load_sop,
    "imagefolder": load_imagefolder,
    "glyphs": load_glyphs,
}


def build_dataset(name: str, root: str | Path | None, **options: Any) -> LabelledImages:
    """The dataset registered as ``name``, read from ``root`` (for ``glyphs``: the cache folder, or None)."""
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(DATASETS)})")
    builder = DATASETS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"{name}: unknown options {unknown}; it accepts {accepted}")
    return builder(Path(root) if root is not None else None, **options)


__all__ = [
    "DATASETS",
    "ArrayImageSubset",
    "ArrayLoader",
    "ClassBalancedBatchSampler",
    "DatasetError",
    "ImageSubset",
    "LabelledImages",
    "UnreadableImage",
    "build_dataset",
    "glyph_heldout",
    "image_dataset",
    "select_images",
    "verify_images",
]
