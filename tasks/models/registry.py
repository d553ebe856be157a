"""Backbones by name, with their input contract and dimensions, and building an embedding model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from functools import lru_cache, partial
from pathlib import Path

import timm
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, ResNet101_Weights

from tasks.data.transforms import GLYPH, IMAGENET, Preprocess
from tasks.models.embedding import EmbeddingModel
from tasks.models.glyph_cnn import glyph_cnn
from tasks.models.resnet import resnet
from tasks.models.weights import (
    HubCheckpoint,
    HuggingFaceWeights,
    WeightsSource,
    load_backbone_weights,
    locate,
)
from tasks.registry import Registry, suggestion

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone: ``create()`` gives it randomly initialised (image -> pooled features).

    ``weights`` is where its published pretrained weights come from (None: there are none, and the
    default is to train from scratch); ``classifier`` names the state-dict prefixes of the classifier
    those files carry. ``freeze_bn`` is the default for frozen BatchNorm statistics.
    """

    name: str
    preprocess: Preprocess
    feature_dim: int
    embedding_dim: int
    create: Callable[[], nn.Module]
    weights: WeightsSource | None
    classifier: tuple[str, ...] = ()
    freeze_bn: bool = True


def _describe_weights(weights: WeightsSource | None) -> dict | str | None:
    if weights is None:
        return None
    fields = asdict(weights) if is_dataclass(weights) else {"source": str(weights)}
    return {"kind": type(weights).__name__, **fields}


def describe_backbone(spec: BackboneSpec) -> dict:
    """What ``oodml list backbones`` shows: feature and embedding sizes, preprocessing, pretrained source."""
    return {
        "feature_dim": spec.feature_dim,
        "embedding_dim": spec.embedding_dim,
        "preprocess": asdict(spec.preprocess),
        "pretrained": _describe_weights(spec.weights),
        "freeze_bn": spec.freeze_bn,
    }


BACKBONES: Registry[BackboneSpec] = Registry("backbone", BackboneSpec, describe=describe_backbone)
register_backbone = BACKBONES.register  # register_backbone(BackboneSpec(...)): a plugin's backbone
BACKBONES.register(
    BackboneSpec(
        "resnet50",
        IMAGENET,
        2048,
        512,
        partial(resnet, 50),
        HubCheckpoint(ResNet50_Weights.IMAGENET1K_V1.url),
        ("fc.",),
    )
)
BACKBONES.register(  # the original's SOP S2SD runs (resnet101_frozen_normalize: these ImageNet weights)
    BackboneSpec(
        "resnet101",
        IMAGENET,
        2048,
        512,
        partial(resnet, 101),
        HubCheckpoint(ResNet101_Weights.IMAGENET1K_V1.url),
        ("fc.",),
    )
)
BACKBONES.register(
    BackboneSpec(
        "resnet18",
        IMAGENET,
        512,
        512,
        partial(resnet, 18),
        HubCheckpoint(ResNet18_Weights.IMAGENET1K_V1.url),
        ("fc.",),
    )
)
BACKBONES.register(BackboneSpec("glyph_cnn", GLYPH, 128, 64, glyph_cnn, None, freeze_bn=False))


@lru_cache
def _timm_spec(name: str) -> BackboneSpec:
    """Any timm model, pooled features (``num_classes=0``), its pretrained config's preprocessing: input
    size, mean/std, resampling filter, and the evaluation resize ``floor(size / crop_pct)`` as timm's
    ``transforms_factory`` computes it; weights from its Hugging Face repository (or the URL of the
    few models timm still fetches from one)."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise ValueError(f"timm has no pretrained config for {name!r}")
    channels, _, size = cfg.input_size
    interpolation = cfg.interpolation if cfg.interpolation in ("bilinear", "bicubic") else "bilinear"
    preprocess = Preprocess(
        size=size,
        resize=math.floor(size / cfg.crop_pct),
        channels=channels,
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        interpolation=interpolation,
    )
    with torch.device("meta"):
        feature_dim = timm.create_model(name, pretrained=False, num_classes=0).num_features
    classifier = (cfg.classifier,) if isinstance(cfg.classifier, str) else tuple(cfg.classifier or ())
    return BackboneSpec(
        TIMM_PREFIX + name,
        preprocess,
        feature_dim,
        512,
        partial(timm.create_model, name, pretrained=False, num_classes=0),
        HuggingFaceWeights(cfg.hf_hub_id) if cfg.hf_hub_id else HubCheckpoint(cfg.url) if cfg.url else None,
        tuple(f"{c}." for c in classifier),
    )


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of ``name``: a key of ``BACKBONES``, ``timm:<model>``, or a bare timm model name
    (``resnet50`` is torchvision's, the paper's; ``timm:resnet50`` is timm's)."""
    if name in BACKBONES:
        return BACKBONES[name]
    timm_name = name.removeprefix(TIMM_PREFIX)
    if timm.is_model(timm_name):
        return _timm_spec(timm_name)
    hint = suggestion(timm_name, dict.fromkeys([*BACKBONES, *timm.list_models()]), n=3)
    raise ValueError(f"unknown backbone {name!r}{hint} (built in: {', '.join(BACKBONES)}; or any timm model)")


def _weights_file(backbone: str, spec: BackboneSpec, pretrained: bool | str | Path | None) -> Path | None:
    if pretrained is None:
        pretrained = spec.weights is not None
    if pretrained is False:
        return None
    if pretrained is True:
        if spec.weights is None:
            raise ValueError(
                f"backbone {backbone!r} has no published pretrained weights: "
                "use pretrained=False (or None), or pass a path to a state dict"
            )
        return locate(backbone, spec.weights)
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {path} does not exist")
    return path


def pretrained_weights(backbone: str, pretrained: bool | str | Path | None) -> Path | None:
    """The weights file ``build_model(backbone, pretrained=pretrained)`` loads (None: it starts from
    scratch), or the error it would raise: so a study can check its weights before any trial runs."""
    return _weights_file(backbone, backbone_spec(backbone), pretrained)


def build_model(
    backbone: str,
    embedding_dim: int | None = None,
    *,
    pretrained: bool | str | Path | None = None,
    freeze_bn: bool | None = None,
    freeze_bn_affine: bool = False,
) -> EmbeddingModel:
    """An :class:`EmbeddingModel` on ``backbone``.

    ``embedding_dim`` and ``freeze_bn`` default to the backbone's (512 and frozen for ResNets, 64 and
    trainable for ``glyph_cnn``). ``pretrained``: None loads the published weights where the backbone
    has them (ResNets, timm models) and starts from scratch where it has none (``glyph_cnn``); True
    requires them; False starts from scratch; a path loads that state dict (classifier keys dropped).
    """
    spec = backbone_spec(backbone)
    weights = _weights_file(backbone, spec, pretrained)
    module = spec.create()
    if weights is not None:
        load_backbone_weights(module, weights, spec.classifier)
    return EmbeddingModel(
        module,
        spec.feature_dim,
        spec.embedding_dim if embedding_dim is None else embedding_dim,
        spec.preprocess,
        freeze_bn=spec.freeze_bn if freeze_bn is None else freeze_bn,
        freeze_bn_affine=freeze_bn_affine,
    )
