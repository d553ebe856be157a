"""Torch datasets: the batched array path against the per-image PIL + build_transform reference."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from tasks.data import (
    ArrayImageSubset,
    ClassBalancedBatchSampler,
    ImageSubset,
    LabelledImages,
    build_dataset,
    image_dataset,
)
from tasks.data.torch_dataset import _bilinear_taps, _resample
from tasks.data.transforms import GLYPH, IMAGENET, Preprocess, build_transform

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def glyphs(tiny_glyphs: dict[str, Any]) -> LabelledImages:
    return build_dataset("glyphs", **tiny_glyphs, num_classes=12)


def label_index(images: LabelledImages) -> dict[str, int]:
    return {c: i for i, c in enumerate(images.classes)}


@pytest.mark.parametrize("pre", [GLYPH, Preprocess(32, 32, 3, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4))])
def test_fast_evaluation_path_equals_the_pil_path(glyphs: LabelledImages, pre: Preprocess) -> None:
    indices = list(range(0, len(glyphs), 3))
    fast = ArrayImageSubset(glyphs, indices, pre, False, label_index(glyphs))
    reference = ImageSubset(glyphs, indices, build_transform(pre, False), label_index(glyphs))
    images, targets = fast.batch(range(len(indices)))
    assert torch.equal(images, torch.stack([reference[k][0] for k in range(len(indices))]))
    assert targets.tolist() == [reference[k][1] for k in range(len(indices))]


def test_crop_resampling_matches_torchvision_within_one_grey_level(glyphs: LabelledImages) -> None:
    pixels = torch.from_numpy(glyphs.load.pixels).repeat(4, 1, 1)  # every image under 4 random crops
    count = len(pixels)
    generator = torch.Generator().manual_seed(0)
    height = torch.randint(1, 33, (count,), generator=generator)
    width = torch.randint(1, 33, (count,), generator=generator)
    top = (torch.rand(count, generator=generator) * (33 - height)).long()
    left = (torch.rand(count, generator=generator) * (33 - width)).long()
    ours = _resample(pixels.float(), _bilinear_taps(top, height, 32), _bilinear_taps(left, width, 32)).round()
    for k in range(count):
        crop = (int(top[k]), int(left[k]), int(height[k]), int(width[k]))
        reference = TF.resized_crop(pixels[k : k + 1], *crop, [32, 32], antialias=True)[0].float()
        assert (ours[k] - reference).abs().max() <= 1


def test_fast_training_path_is_seeded_and_shaped(glyphs: LabelledImages) -> None:
    fast = ArrayImageSubset(glyphs, range(len(glyphs)), GLYPH, True, label_index(glyphs))
    torch.manual_seed(0)
    first, targets = fast.batch(range(16))
    torch.manual_seed(0)
    assert torch.equal(fast.batch(range(16))[0], first)
    assert first.shape == (16, 1, 32, 32) and first.dtype == torch.float32 and first.abs().max() <= 1
    evaluation = ArrayImageSubset(glyphs, range(len(glyphs)), GLYPH, False, label_index(glyphs)).batch(
        range(16)
    )
    assert not torch.equal(first, evaluation[0]) and torch.equal(targets, evaluation[1])


def test_image_dataset_picks_the_fast_path_only_where_it_applies(glyphs: LabelledImages) -> None:
    assert isinstance(image_dataset(glyphs, [0, 1], GLYPH, True, label_index(glyphs)), ArrayImageSubset)
    resnet_input = image_dataset(glyphs, [0, 1], IMAGENET, False, label_index(glyphs))
    assert isinstance(resnet_input, ImageSubset) and resnet_input[1][0].shape == (3, 224, 224)
    with pytest.raises(ValueError, match="no entry for classes"):
        ImageSubset(glyphs, [0], build_transform(GLYPH, False), {})


def test_dataloader_with_class_balanced_batches(glyphs: LabelledImages) -> None:
    train = glyphs.indices_of(glyphs.default_train)
    dataset = image_dataset(glyphs, train, GLYPH, True, label_index(glyphs))
    sampler = ClassBalancedBatchSampler(dataset.targets, batch_size=8, samples_per_class=2, seed=0)
    images, targets = next(iter(DataLoader(dataset, batch_sampler=sampler)))
    assert images.shape == (8, 1, 32, 32) and len(set(targets.tolist())) == 4
    assert set(targets.tolist()) <= set(range(len(glyphs.default_train)))
