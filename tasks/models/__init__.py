"""Backbones and the embedding model on top of them (``build_model``)."""

from tasks.models.embedding import EmbeddingModel
from tasks.models.registry import (
    BACKBONES,
    BackboneSpec,
    backbone_spec,
    build_model,
    pretrained_weights,
    register_backbone,
)
from tasks.models.weights import PretrainedWeightsError

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
