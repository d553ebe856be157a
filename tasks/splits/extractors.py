"""The FID feature extractors by name (``EXTRACTORS``), declared without importing them: each names its
two functions by reference (``"tasks.splits.features:resnet50_weights"``), imported on first use
(:class:`~tasks.registry.LazyReference`), so ``oodml list extractors`` and a spec's name check import no
torch. ``tasks.splits.features`` computes the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.registry import LazyReference, Registry, doc_line

if TYPE_CHECKING:
    from tasks.data.base import LabelledImages
    from tasks.splits.features import Extractor


@dataclass(frozen=True)
class ExtractorKind:
    """A feature extractor: where its weights are (cheap; raises ``FeatureWeightsError`` when they cannot
    be had, so a study can check before it starts) and how to build it from them."""

    weights: Callable[[LabelledImages, Path | None], Path]
    build: Callable[[LabelledImages, Path], Extractor]
    needs: str = ""  # what it needs to run, in words (``oodml list extractors``)


def _describe_extractor(kind: ExtractorKind) -> dict[str, str]:
    return {"needs": kind.needs, "weights": doc_line(kind.weights), "build": doc_line(kind.build)}


EXTRACTORS: Registry[ExtractorKind] = Registry(
    "feature extractor", ExtractorKind, plural="extractors", describe=_describe_extractor
)


def _declared(name: str, weights: tuple[str, str], build: tuple[str, str], needs: str) -> ExtractorKind:
    """Extractor ``name`` from its two functions' references, each with its docstring's first line."""
    owner = f"feature extractor {name!r}"
    return ExtractorKind(
        LazyReference(owner, weights[0], role="weights function", doc=weights[1]),
        LazyReference(owner, build[0], doc=build[1]),
        needs,
    )


EXTRACTORS.register(
    _declared(
        "resnet50",
        (
            "tasks.splits.features:resnet50_weights",
            "ResNet50's ImageNet (IMAGENET1K_V1) weights: ``weights``, or the torch hub cache's file (fetched "
            "into the cache when the network allows).",
        ),
        ("tasks.splits.features:resnet50_extractor", "ResNet50 with the ImageNet weights at ``weights``."),
        "torchvision's ResNet50 ImageNet weights (IMAGENET1K_V1) in the torch hub cache, or weights=<file>; 2048-d",
    ),
    name="resnet50",
)
EXTRACTORS.register(
    _declared(
        "glyph-classifier",
        (
            "tasks.splits.features:glyph_classifier_weights",
            "``weights`` (a ``glyph_feature_cnn`` state dict), or where the network trained on the held-out "
            "classes of ``images``' glyph bank is cached, next to the bank (trained on first use).",
        ),
        (
            "tasks.splits.features:glyph_classifier_extractor",
            "The glyph feature network from ``weights``, trained first if they are the bank's cache and absent.",
        ),
        "a glyph benchmark (its held-out classes train the network on first use), or weights=<file>; 128-d",
    ),
    name="glyph-classifier",
)
