"""Backbones by name, with their input contract and dimensions, and building an embedding model.

The built-in backbones are declared in ``tasks/models/catalog.py``, each naming the function that creates
its module by reference (``"tasks.models.resnet:resnet50"``), imported on first build: listing and
checking backbones imports no torch (nor timm, unless a ``timm:`` name is looked up).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.data.preprocess import Preprocess
from tasks.models.weights import HubCheckpoint, HuggingFaceWeights, WeightsSource, locate
from tasks.registry import LazyReference, Registry, RegistryError, suggestion

if TYPE_CHECKING:
    from torch import nn

    from tasks.models.embedding import EmbeddingModel

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone: ``create()`` gives it randomly initialised (image -> pooled features); ``create`` may be
    a reference, ``"package.module:name"``, imported when the backbone is first built.

    ``weights`` is where its published pretrained weights come from (None: there are none, and the
    default is to train from scratch); ``classifier`` names the state-dict prefixes of the classifier
    those files carry. ``freeze_bn`` is the default for frozen BatchNorm statistics.
    """

    name: str
    preprocess: Preprocess
    feature_dim: int
    embedding_dim: int
    create: Callable[[], nn.Module] | str
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


def _check_create(name: str, create: Callable[..., Any]) -> None:
    """``create()`` takes no argument it needs."""
    try:
        inspect.signature(create).bind()
    except TypeError as error:
        raise RegistryError(
            f"backbone {name!r}: create() must build the module without arguments ({error})"
        ) from error


def _check_backbone(name: str, spec: BackboneSpec) -> None:
    if isinstance(spec.create, str):
        raise RegistryError(
            f"backbone {name!r}: its create is a reference {spec.create!r}: register it with "
            "register_backbone, which imports it on first build"
        )
    if not callable(spec.create):
        raise RegistryError(f"backbone {name!r}: BackboneSpec.create must be a callable, got {spec.create!r}")
    if not isinstance(spec.create, LazyReference):
        _check_create(name, spec.create)


BACKBONES: Registry[BackboneSpec] = Registry(
    "backbone", BackboneSpec, check=_check_backbone, describe=describe_backbone
)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Register a backbone (a plugin's too) and return it as registered: a ``create`` given by reference
    is held as a :class:`~tasks.registry.LazyReference`, imported and checked when first built."""
    if isinstance(spec, BackboneSpec) and isinstance(spec.create, str):
        name = spec.name
        create = LazyReference(
            f"backbone {name!r}", spec.create, role="create", check=lambda found: _check_create(name, found)
        )
        spec = replace(spec, create=create)
    return BACKBONES.register(spec)


@lru_cache
def _timm_spec(name: str) -> BackboneSpec:
    """Any timm model, pooled features (``num_classes=0``), its pretrained config's preprocessing: input
    size, mean/std, resampling filter, and the evaluation resize ``floor(size / crop_pct)`` as timm's
    ``transforms_factory`` computes it; weights from its Hugging Face repository (or the URL of the
    few models timm still fetches from one)."""
    import timm
    import torch

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
    import timm

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
    from tasks.models.embedding import EmbeddingModel
    from tasks.models.weights import load_backbone_weights

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
