"""Class-mean features for FID: the npz format, the extractors' weights, the per-image cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import tasks.splits.features as features
from tasks.data import build_dataset
from tasks.splits.features import ClassFeatures, FeatureWeightsError, class_mean_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """One epoch is enough to test the plumbing."""
    monkeypatch.setattr(features, "GLYPH_CLASSIFIER", features.GlyphClassifierSettings(epochs=1))


def test_class_features_round_trip_and_hash(tmp_path: Path) -> None:
    saved = ClassFeatures.from_means(["b", "a"], np.arange(6.0).reshape(2, 3), "resnet50")
    saved.save_npz(tmp_path / "f.npz")
    loaded = ClassFeatures.load_npz(tmp_path / "f.npz")
    assert loaded.class_names == ["b", "a"] and loaded.extractor == "resnet50"
    assert np.array_equal(loaded.means, saved.means) and loaded.means.dtype == np.float64
    assert (
        loaded.feature_hash
        == saved.feature_hash
        != ClassFeatures.from_means(["a", "b"], saved.means, "x").feature_hash
    )
    arrays = dict(np.load(tmp_path / "f.npz"))
    np.savez(tmp_path / "damaged.npz", **{**arrays, "means": arrays["means"] + 1})
    with pytest.raises(ValueError, match="does not match its contents"):
        ClassFeatures.load_npz(tmp_path / "damaged.npz")


def test_glyph_classifier_features_are_cached(
    tiny_glyphs: dict[str, Any], tiny_classifier: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=20)
    first = class_mean_features(images, "glyph-classifier", cache_dir=tmp_path, progress=False)
    assert first.class_names == images.classes and first.means.shape == (20, 128)
    assert first.extractor == "glyph-classifier" and np.isfinite(first.means).all()
    assert len(list(tiny_glyphs["root"].glob("glyph-classifier-*.pt"))) == 1
    assert len(list(tmp_path.glob("glyphs-glyph-classifier-*.npz"))) == 1
    # a second call neither trains nor reads an image
    monkeypatch.setattr(features, "train_glyph_classifier", lambda *_: pytest.fail("trained again"))
    monkeypatch.setattr(features, "image_dataset", lambda *_: pytest.fail("features computed again"))
    again = class_mean_features(images, "glyph-classifier", cache_dir=tmp_path, progress=False)
    assert again.feature_hash == first.feature_hash


def test_glyph_classifier_needs_a_glyph_benchmark_or_weights(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (32, 32), 255).save(tmp_path / "a" / "x.png")
    Image.new("L", (32, 32), 0).save(tmp_path / "b" / "y.png")
    images = build_dataset("imagefolder", tmp_path)
    with pytest.raises(FeatureWeightsError, match="not a glyph benchmark.*or pass weights="):
        class_mean_features(images, "glyph-classifier", cache_dir=None, progress=False)
    torch.save(features.glyph_feature_cnn().state_dict(), tmp_path / "net.pt")
    means = class_mean_features(images, "glyph-classifier", cache_dir=None, weights=tmp_path / "net.pt").means
    assert means.shape == (2, 128)


def test_resnet50_without_weights_says_which_file_goes_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_glyphs: dict[str, Any]
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=4)
    expected = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    message = (
        rf"not found at {expected}, and not downloaded because OODML_OFFLINE is set .*Fetch "
        r"https://download\.pytorch\.org/models/resnet50-0676ba61\.pth .*TORCH_HOME.*weights="
    )
    with pytest.raises(FeatureWeightsError, match=message):
        class_mean_features(images, "resnet50", cache_dir=None)
    with pytest.raises(ValueError, match="unknown feature extractor 'resnet5'"):
        class_mean_features(images, "resnet5", cache_dir=None)


def _structured_image(width: int, height: int, tone: int, rng: np.random.Generator) -> Image.Image:
    """Stripes and gradients that vary across the frame, so crops and flips change what the network sees."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * (tone + 1)) % 256, (2 * y + 60 * tone) % 256, ((x + y) // (3 + tone)) % 256]
    pixels = np.stack(planes, axis=-1) + rng.integers(0, 40, size=(height, width, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


@pytest.mark.slow
def test_resnet50_features_are_class_means_of_pooled_eval_features(tmp_path: Path) -> None:
    """docs/protocol.md section 1: every image through the evaluation transform (Resize 256, CenterCrop
    224, ImageNet normalisation; no augmentation) and the network in eval mode, its 2048-d globally
    average-pooled penultimate features, averaged per class. The reference is torchvision's own ResNet50 (random weights,
    fc = Identity) on torchvision's classic PIL transforms; PIL's and the tensor path's antialiased resizes
    differ by about 1e-4 of the largest feature, while (measured) a training augmentation (crop and flip)
    moves the means by 5% of it, a per-class max by 8%, max pooling by 60%, batch statistics (train mode)
    by 99%."""
    import torchvision
    from torchvision import transforms

    rng = np.random.default_rng(0)
    shapes = {"a": [(300, 260), (260, 380)], "b": [(420, 290), (256, 256), (280, 330)]}  # (width, height)
    for tone, (name, sizes) in enumerate(shapes.items()):
        (tmp_path / "images" / name).mkdir(parents=True)
        for k, (width, height) in enumerate(sizes):
            _structured_image(width, height, tone, rng).save(tmp_path / "images" / name / f"{k}.png")
    torch.manual_seed(0)
    reference = torchvision.models.resnet50()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    reference.fc = nn.Identity()
    reference.eval()

    images = build_dataset("imagefolder", tmp_path / "images")
    result = class_mean_features(
        images, "resnet50", cache_dir=None, weights=tmp_path / "resnet50.pth", progress=False
    )
    assert result.class_names == ["a", "b"] and result.means.shape == (2, 2048)

    evaluation = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    expected, per_class_max = [], []
    with torch.no_grad():
        for name in result.class_names:
            files = sorted((tmp_path / "images" / name).iterdir())
            batch = torch.stack([evaluation(Image.open(f).convert("RGB")) for f in files])
            pooled = reference(batch).double().numpy()
            expected.append(pooled.mean(axis=0))
            per_class_max.append(pooled.max(axis=0))
    expected, per_class_max = np.array(expected), np.array(per_class_max)
    scale = np.abs(expected).max()
    assert np.abs(result.means - expected).max() < 1e-3 * scale
    assert np.abs(per_class_max - expected).max() > 2e-2 * scale  # the comparison tells max from mean
