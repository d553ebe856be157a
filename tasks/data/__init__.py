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
from tasks.data.torch_dataset import ArrayImageSubset, ImageSubset, TwoViews, image_dataset
from tasks.data.verify import (
    UNREADABLE_POLICIES,
    UnreadableImage,
    describe_unreadable,
    find_unreadable,
    select_images,
    verify_images,
)

DATASETS: dict[str, Callable[..., LabelledImages]] = {
    "cub200": load_cub200,
    "cars196": load_cars196,
    "sop": load_sop,
    "imagefolder": load_imagefolder,
    "glyphs": load_glyphs,
}


def dataset_options(name: str) -> list[str]:
    """The options ``build_dataset`` takes for dataset ``name``: its builder's, plus ``unreadable_images``."""
    parameters = inspect.signature(DATASETS[name]).parameters
    return [p for p in parameters if p != "root"] + ["unreadable_images"]


def build_dataset(name: str, root: str | Path | None, **options: Any) -> LabelledImages:
    """The dataset registered as ``name``, read from ``root`` (for ``glyphs``: the cache folder, or None).

    Every dataset takes ``unreadable_images``: ``"fail"`` (default: loading an unreadable image fails,
    naming the file) or ``"skip"`` (decode every image now and leave the unreadable ones out).
    """
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(DATASETS)})")
    accepted = dataset_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"{name}: unknown options {unknown}; it accepts {accepted}")
    policy = options.pop("unreadable_images", "fail")
    if policy not in UNREADABLE_POLICIES:
        raise DatasetError(f"{name}: option unreadable_images must be 'fail' or 'skip', got {policy!r}")
    images = DATASETS[name](Path(root) if root is not None else None, **options)
    return verify_images(images, on_error="skip")[0] if policy == "skip" else images


__all__ = [
    "DATASETS",
    "ArrayImageSubset",
    "ArrayLoader",
    "ClassBalancedBatchSampler",
    "DatasetError",
    "ImageSubset",
    "LabelledImages",
    "UNREADABLE_POLICIES",
    "UnreadableImage",
    "build_dataset",
    "dataset_options",
    "describe_unreadable",
    "find_unreadable",
    "glyph_heldout",
    "TwoViews",
    "image_dataset",
    "select_images",
    "verify_images",
]
