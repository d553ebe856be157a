"""Class-mean features of a fixed pretrained network: what FID between class sets compares
(docs/protocol.md section 1).

Every image goes through the extractor's evaluation transform and network; its globally pooled
penultimate features are averaged per class. Extractors (``EXTRACTORS``, declared in ``tasks.splits.extractors``):

- ``resnet50``: torchvision's ResNet50 with the ImageNet weights the paper used (IMAGENET1K_V1), 2048-d.
  Weights come from ``weights=`` or the torch hub cache, downloaded there unless offline
  (``tasks.models.weights``: ``OODML_OFFLINE=1``, or a failed connection, uses the cache only).
- ``glyph-classifier``: for the glyph demo, a small CNN (``glyph_feature_cnn``, 128-d) trained as a
  classifier on the held-out glyph classes, which play ImageNet's role. Why not pixel PCA or a random
  CNN: they also give a FID trend, but under them an untrained network's Recall@1 falls with FID too,
  i.e. part of their "shift" is mere test difficulty; with features learned on other classes it does
  not (measured on the glyph benchmark). Its trained weights are cached next to the glyph bank, keyed
  by their settings.

Per-image features are cached under ``cache_dir`` keyed by dataset, extractor weights, transform and
image ids, so a second call only averages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from tasks.data.base import DatasetError, LabelledImages
from tasks.data.cache import atomic_write
from tasks.data.glyphs import heldout_for
from tasks.data.torch_dataset import ArrayImageSubset, image_dataset
from tasks.data.transforms import GLYPH, IMAGENET, Preprocess
from tasks.models.resnet import resnet
from tasks.models.weights import HubCheckpoint, fetch, load_backbone_weights
from tasks.progress import tracked
from tasks.splits.extractors import EXTRACTORS

RESNET50_IMAGENET = HubCheckpoint(ResNet50_Weights.IMAGENET1K_V1.url)  # the paper's weights


class FeatureWeightsError(FileNotFoundError):
    """The weights of a feature extractor are not on this machine."""


@dataclass(frozen=True)
class ClassFeatures:
    """One mean feature vector per class (rows of ``means`` follow ``class_names``)."""

    class_names: list[str]
    means: np.ndarray  # C x d float64
    extractor: str
    feature_hash: str  # sha256 of the means' bytes and the class names

    @classmethod
    def from_means(cls, class_names: Sequence[str], means: np.ndarray, extractor: str) -> ClassFeatures:
        means = np.ascontiguousarray(means, dtype=np.float64)
        if means.shape[0] != len(class_names):
            raise ValueError(f"{len(class_names)} class names but {means.shape[0]} mean vectors")
        return cls(list(class_names), means, extractor, features_hash(class_names, means))

    def save_npz(self, path: str | Path) -> None:
        _write_npz(
            Path(path),
            class_names=np.array(self.class_names, dtype=np.str_),
            means=self.means,
            extractor=np.array(self.extractor, dtype=np.str_),
            feature_hash=np.array(self.feature_hash, dtype=np.str_),
        )

    @classmethod
    def load_npz(cls, path: str | Path) -> ClassFeatures:
        with np.load(path, allow_pickle=False) as data:
            loaded = cls.from_means(
                [str(n) for n in data["class_names"]], data["means"], str(data["extractor"])
            )
            stored = str(data["feature_hash"])
        if loaded.feature_hash != stored:
            raise ValueError(
                f"{path}: the stored feature hash does not match its contents; the file is damaged"
            )
        return loaded


def features_hash(class_names: Sequence[str], means: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(means, dtype=np.float64).tobytes())
    digest.update("\n".join(class_names).encode())
    return digest.hexdigest()


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_write(path) as handle:
        np.savez_compressed(handle, **arrays)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class Extractor:
    """A network mapping preprocessed images (B x C x S x S) to pooled features (B x d)."""

    network: nn.Module
    preprocess: Preprocess
    weights_id: str  # identifies the weights in cache keys


def resnet50_weights(images: LabelledImages, weights: Path | None) -> Path:
    """ResNet50's ImageNet (IMAGENET1K_V1) weights: ``weights``, or the torch hub cache's file (fetched
    into the cache when the network allows)."""
    if weights is not None:
        if not weights.is_file():
            raise FeatureWeightsError(f"ResNet50 ImageNet weights (IMAGENET1K_V1) not found at {weights}")
        return weights
    path, why = fetch(RESNET50_IMAGENET)
    if path is None:
        raise FeatureWeightsError(
            f"ResNet50 ImageNet weights (IMAGENET1K_V1) not found at {RESNET50_IMAGENET.path}, and {why}. "
            f"Fetch {RESNET50_IMAGENET.url} and save it as {RESNET50_IMAGENET.path} (set TORCH_HOME to move "
            f"the torch hub cache), or pass weights=<path to {RESNET50_IMAGENET.path.name}>"
        )
    return path


def resnet50_extractor(images: LabelledImages, weights: Path) -> Extractor:
    """ResNet50 with the ImageNet weights at ``weights``."""
    network = resnet(50)
    load_backbone_weights(network, weights, drop_prefixes=("fc.",))
    return Extractor(network, IMAGENET, _file_digest(weights))


def glyph_feature_cnn() -> nn.Sequential:
    """Image (B, 1, 32, 32) -> 128-d pooled feature: three stride-2 3x3 convolutions (32-64-128 channels)
    with BatchNorm and ReLU, then global average pooling. About a fifth of the trial backbone's compute
    per image (measured), so that training it on the held-out pool fits the demo's time budget."""
    layers: list[nn.Module] = []
    channels = 1
    for out in (32, 64, 128):
        layers += [
            nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(),
        ]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


@dataclass(frozen=True)
class GlyphClassifierSettings:
    """How the glyph feature network is trained (plain cross-entropy over the held-out classes).

    Measured on the default benchmark: Recall@1 over its 200 (unseen) classes with these features is
    0.61 after 2 epochs, 0.40 after 1, 0.27 for the untrained network.
    """

    epochs: int = 2
    batch_size: int = 64
    lr: float = 2e-3  # Adam
    seed: int = 0
    # the GLYPH training transform (random crops); off: the rendered jitters already vary every image,
    # and crops of half a glyph slowed learning within a couple of epochs
    augment: bool = False


GLYPH_CLASSIFIER = GlyphClassifierSettings()


def train_glyph_classifier(heldout: LabelledImages, settings: GlyphClassifierSettings) -> nn.Module:
    """``glyph_feature_cnn`` trained, with a linear classifier on top, to tell the held-out classes apart.

    Seeded: the same pool and settings give the same weights on a given machine.
    """
    classes = heldout.classes
    label_to_index = {c: i for i, c in enumerate(classes)}
    data = ArrayImageSubset(heldout, range(len(heldout)), GLYPH, settings.augment, label_to_index)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        trunk = glyph_feature_cnn()
        model = nn.Sequential(trunk, nn.Linear(128, len(classes)))
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        model.train()
        for _ in range(settings.epochs):
            order = torch.randperm(len(data)).tolist()
            for start in range(0, len(order), settings.batch_size):
                inputs, targets = data.batch(order[start : start + settings.batch_size])
                loss = nn.functional.cross_entropy(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return trunk


def glyph_classifier_weights(images: LabelledImages, weights: Path | None) -> Path:
    """``weights`` (a ``glyph_feature_cnn`` state dict), or where the network trained on the held-out
    classes of ``images``' glyph bank is cached, next to the bank (trained on first use)."""
    if weights is not None:
        if not weights.is_file():
            raise FeatureWeightsError(f"glyph-classifier weights {weights} not found")
        return weights
    try:
        heldout = heldout_for(images)
    except DatasetError as error:
        raise FeatureWeightsError(
            f"{error}; glyph-classifier features are trained on a glyph benchmark's held-out classes, "
            "or pass weights=<path to a glyph_feature_cnn state dict>"
        ) from error
    key = _digest(heldout.root.name, heldout.classes, asdict(GLYPH_CLASSIFIER))[:16]
    return heldout.root.parent / f"glyph-classifier-{key}.pt"


def glyph_classifier_extractor(images: LabelledImages, weights: Path) -> Extractor:
    """The glyph feature network from ``weights``, trained first if they are the bank's cache and absent."""
    if not weights.is_file():
        trained = train_glyph_classifier(heldout_for(images), GLYPH_CLASSIFIER)
        with atomic_write(weights) as handle:
            torch.save(trained.state_dict(), handle)
    network = glyph_feature_cnn()
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return Extractor(network, GLYPH, _file_digest(weights))


# FID feature extractor per dataset where it is not the paper's ResNet50.
DEFAULT_EXTRACTOR = {"glyphs": "glyph-classifier"}


def default_extractor(dataset: str | None) -> str:
    """The FID feature extractor of a dataset: the glyph classifier for the demo, else the paper's ResNet50."""
    return DEFAULT_EXTRACTOR.get(dataset or "", "resnet50")


def extractor_weights(images: LabelledImages, extractor: str, weights: str | Path | None = None) -> Path:
    """Where ``extractor``'s weights for ``images`` are; ``ValueError`` for an unknown extractor name and
    ``FeatureWeightsError`` when the weights cannot be had."""
    return EXTRACTORS.get(extractor).weights(images, Path(weights).expanduser() if weights else None)


def _feature_cache_path(cache_dir: Path, images: LabelledImages, name: str, extractor: Extractor) -> Path:
    ids = hashlib.sha256("\n".join(images.image_ids).encode()).hexdigest()
    key = _digest(
        images.name, str(images.root), name, extractor.weights_id, asdict(extractor.preprocess), ids
    )
    return cache_dir / f"{images.name}-{name}-{key[:16]}.npz"


def image_features(
    images: LabelledImages,
    extractor: str = "resnet50",
    *,
    cache_dir: str | Path | None,
    weights: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Pooled features of every image (N x d float32), from ``cache_dir`` when computed before."""
    where = extractor_weights(images, extractor, weights)  # checks the name first
    spec = EXTRACTORS[extractor].build(images, where)
    cache = _feature_cache_path(Path(cache_dir), images, extractor, spec) if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return data["features"]
    label_to_index = {c: i for i, c in enumerate(images.classes)}
    dataset = image_dataset(images, range(len(images)), spec.preprocess, False, label_to_index)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    network = spec.network.to(device).eval()
    parts = []
    with torch.inference_mode():
        batches = tracked(
            loader, len(loader), f"{extractor} features of {images.name}", unit="batch", quiet=not progress
        )
        for inputs, _ in batches:
            parts.append(network(inputs.to(device)).float().cpu().numpy())
    features = np.concatenate(parts)
    if cache is not None:
        _write_npz(cache, features=features)
    return features


def class_mean_features(images: LabelledImages, extractor: str = "resnet50", **options: Any) -> ClassFeatures:
    """The mean feature of every class, classes in ``images.classes`` order (default train, then test).

    ``options`` are ``image_features``' (``cache_dir`` is required).
    """
    features = image_features(images, extractor, **options)
    by_class = images.indices_by_class()
    names = images.classes
    means = np.stack([features[by_class[c]].astype(np.float64).mean(0) for c in names])
    return ClassFeatures.from_means(names, means, extractor)
