"""Datasets, transforms, samplers and torch datasets; ``build_dataset`` resolves a name through ``DATASETS``
(``tasks.data.registry``). The names load their module on first use (``tasks.lazy``): a light submodule
(``tasks.data.download``, ``.cache``) does not import torch through the package."""

from __future__ import annotations

from tasks.lazy import lazy_exports

_EXPORTS = {
    "ArrayImageSubset": "torch_dataset",
    "ArrayLoader": "arrays",
    "ClassBalancedBatchSampler": "samplers",
    "DATASETS": "registry",
    "DatasetError": "base",
    "ImageSubset": "torch_dataset",
    "LabelledImages": "base",
    "TwoViews": "torch_dataset",
    "UNREADABLE_POLICIES": "verify",
    "UnreadableImage": "verify",
    "build_dataset": "registry",
    "dataset_options": "registry",
    "describe_unreadable": "verify",
    "find_unreadable": "verify",
    "glyph_heldout": "glyphs",
    "image_dataset": "torch_dataset",
    "register_dataset": "registry",
    "select_images": "verify",
    "verify_images": "verify",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
