"""A timm backbone brings its own preprocessing: input size, mean/std, resampling filter and evaluation
resize from its pretrained config, used by the train and evaluation transforms (no download: the specs
and randomly initialised models only)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from tasks.data.transforms import IMAGENET, build_transform
from tasks.models import backbone_spec, build_model

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


@pytest.mark.parametrize(
    ("name", "size", "resize", "mean", "interpolation"),
    [
        ("timm:test_vit", 160, math.floor(160 / 0.95), (0.5, 0.5, 0.5), "bicubic"),  # not 224, not ImageNet
        ("timm:resnet10t", 176, math.floor(176 / 0.875), IMAGENET.mean, "bicubic"),
        ("timm:test_resnet", 160, math.floor(160 / 0.95), (0.5, 0.5, 0.5), "bilinear"),
        ("timm:vit_base_patch16_clip_224.openai", 224, math.floor(224 / 0.9), CLIP_MEAN, "bicubic"),
        ("timm:vit_small_patch14_dinov2", 518, 518, IMAGENET.mean, "bicubic"),
    ],
)
def test_spec_reads_the_pretrained_config(name, size, resize, mean, interpolation):
    pre = backbone_spec(name).preprocess
    assert (pre.size, pre.resize, pre.channels, pre.interpolation) == (size, resize, 3, interpolation)
    assert pre.mean == pytest.approx(mean)


def _resizes(transform) -> list:
    return [t for t in transform.transforms if isinstance(t, v2.Resize | v2.RandomResizedCrop)]


@pytest.mark.parametrize("train", [True, False])
def test_transforms_use_the_models_size_mean_and_filter(train):
    model = build_model("timm:test_vit", pretrained=False)
    assert model.preprocess == backbone_spec("timm:test_vit").preprocess
    transform = build_transform(model.preprocess, train)
    white = Image.fromarray(np.full((32, 32), 255, dtype=np.uint8))  # a glyph-sized grey-scale image
    x = transform(white)
    assert x.shape == (3, 160, 160)
    # mean 0.5, std 0.5: white is 1.0 (ImageNet's statistics would give 2.25 / 2.43 / 2.64)
    torch.testing.assert_close(x, torch.ones_like(x))
    assert all(t.interpolation == v2.InterpolationMode.BICUBIC for t in _resizes(transform))
    if not train:
        assert [t.size for t in _resizes(transform)] == [[168]]


def test_built_in_backbones_keep_bilinear():
    transform = build_transform(backbone_spec("resnet50").preprocess, False)
    assert [t.interpolation for t in _resizes(transform)] == [v2.InterpolationMode.BILINEAR]


def test_timm_model_without_a_hub_repository_points_at_its_url():
    spec = backbone_spec("timm:gcvit_xxtiny.in1k")
    assert spec.weights is not None and spec.weights.url.startswith("https://")
