"""Backbones and the embedding model on top of them (``build_model``).

Importing the package registers the built-in backbones' declarations (``tasks/models/catalog.py``) and
imports no torch; ``EmbeddingModel`` and ``PretrainedWeightsError`` load their module on first use
(``tasks.lazy``), each backbone's module when it is first built.
"""

from tasks.lazy import lazy_exports
from tasks.models import catalog  # noqa: F401  (registers the built-in backbones)
from tasks.models.registry import (
    BACKBONES,
    BackboneSpec,
    backbone_spec,
    build_model,
    pretrained_weights,
    register_backbone,
)

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "EmbeddingModel",
    "PretrainedWeightsError",
    "backbone_spec",
    "build_model",
    "pretrained_weights",
    "register_backbone",
]
__getattr__ = lazy_exports(__name__, {"EmbeddingModel": "embedding", "PretrainedWeightsError": "weights"})
