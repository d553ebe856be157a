"""Torch datasets over ``LabelledImages``: the general per-image PIL path and a batched fast path for arrays."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from tasks.data.arrays import ArrayLoader
from tasks.data.base import LabelledImages
from tasks.data.transforms import Preprocess, build_transform
from tasks.threads import torch_threads


def class_indices(
    images: LabelledImages, indices: np.ndarray, label_to_index: Mapping[str, int]
) -> np.ndarray:
    missing = sorted({images.labels[i] for i in indices} - set(label_to_index))
    if missing:
        raise ValueError(f"{images.name}: label_to_index has no entry for classes {missing[:5]}")
    return np.array([label_to_index[images.labels[i]] for i in indices], dtype=np.int64)


class ImageSubset(Dataset):
    """Images ``indices`` of ``images``: item k is (``transform(load(indices[k]))``, its class index)."""

    def __init__(
        self,
        images: LabelledImages,
        indices: Sequence[int],
        transform: Callable[[Image.Image], torch.Tensor],
        label_to_index: Mapping[str, int],
    ) -> None:
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.targets = class_indices(images, self.indices, label_to_index)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images.load(int(self.indices[k]))), int(self.targets[k])


def _bilinear_taps(start: torch.Tensor, length: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """Source pixels and weights resampling the crop [start, start + length) of each row to ``size`` pixels.

    Bilinear with half-pixel centres and edge clamping, i.e. ``interpolate(..., align_corners=False)``
    (torchvision's antialiased kernel equals it when upsampling, the only case a crop of the image needs).
    Returns B x size tensors: low and high source indices and the weight of the high one.
    """
    scale = length.double()[:, None] / size
    source = ((torch.arange(size, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    low = source.floor().long().minimum(length[:, None] - 1)
    high = (low + 1).minimum(length[:, None] - 1)
    return start[:, None] + low, start[:, None] + high, (source - low).float()


def _resample(
    images: torch.Tensor, rows: tuple[torch.Tensor, ...], cols: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """Separable bilinear resampling of B x H x W ``images`` with per-image taps (gathers, no matmul)."""
    batch = torch.arange(len(images))[:, None]
    low, high, frac = rows
    images = images[batch, low] * (1 - frac[..., None]) + images[batch, high] * frac[..., None]
    low, high, frac = cols
    pick = lambda index: images.gather(2, index[:, None, :].expand(-1, images.shape[1], -1))  # noqa: E731
    return pick(low) * (1 - frac[:, None]) + pick(high) * frac[:, None]


def array_path_applies(images: LabelledImages, pre: Preprocess) -> bool:
    """Array-backed square images already at the input size, so evaluation neither resizes nor crops."""
    if not isinstance(images.load, ArrayLoader):
        return False
    _, height, width = images.load.pixels.shape
    return height == width == pre.size == pre.resize


class ArrayImageSubset(Dataset):
    """Fast path for array-backed greyscale images (the glyph demo): whole batches, no PIL round trip.

    Gives what ``build_transform(pre, train)`` gives on each image: exactly for evaluation; for training
    the same crop-parameter distribution (drawn from torch's global generator, like the reference) and
    the same bilinear resampling, within one grey level of torchvision's fixed-point uint8 kernel.
    Needs square images of side ``pre.size == pre.resize``. DataLoader batches go through ``__getitems__``.
    """

    def __init__(
        self,
        images: LabelledImages,
        indices: Sequence[int],
        pre: Preprocess,
        train: bool,
        label_to_index: Mapping[str, int],
    ) -> None:
        if not array_path_applies(images, pre):
            raise ValueError(f"{images.name}: not array-backed images of side {pre.size}; use ImageSubset")
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = class_indices(images, self.indices, label_to_index)
        self.pre = pre
        crops = [t for t in build_transform(pre, train).transforms if isinstance(t, v2.RandomResizedCrop)]
        self.crop = crops[0] if crops else None
        self.hflip = train and pre.hflip

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        return self.__getitems__([k])[0]

    def __getitems__(self, ks: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        images, targets = self.batch(ks)
        return list(zip(images, targets.tolist(), strict=True))

    def batch(self, ks: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``ks`` as one B x C x size x size float tensor and their class indices."""
        # one intra-op thread: a batch of small images is far below the size where torch's thread pool
        # pays off; there it only adds synchronisation, 25x the work itself on a busy 2-core box (measured)
        with torch_threads(1):
            return self._batch(ks)

    def _batch(self, ks: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.from_numpy(self.images.load.pixels[self.indices[np.asarray(ks, dtype=np.int64)]])
        images = pixels.unsqueeze(1)
        if self.crop is not None:
            images = self._random_resized_crop(images)
        if self.hflip:
            flip = torch.rand(len(images)) < 0.5
            images[flip] = images[flip].flip(-1)
        images = images.expand(-1, self.pre.channels, -1, -1)  # "L" -> "RGB" repeats the grey channel
        images = TF.normalize(TF.to_dtype(images, torch.float32, scale=True), self.pre.mean, self.pre.std)
        return images, torch.from_numpy(self.targets[np.asarray(ks, dtype=np.int64)])

    def _random_resized_crop(self, images: torch.Tensor) -> torch.Tensor:
        """``RandomResizedCrop.make_params`` for a whole batch (10 tries, then the central fallback)."""
        count, _, height, width = images.shape
        scale, ratio, size = self.crop.scale, self.crop.ratio, self.crop.size[0]
        area = height * width * torch.empty(count, 10).uniform_(*scale)
        aspect = torch.exp(torch.empty(count, 10).uniform_(math.log(ratio[0]), math.log(ratio[1])))
        w = torch.sqrt(area * aspect).round().long()
        h = torch.sqrt(area / aspect).round().long()
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits.long().argmax(1, keepdim=True)
        w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
        in_ratio = width / height
        fallback_w, fallback_h = width, height
        if in_ratio < min(ratio):
            fallback_h = round(width / min(ratio))
        elif in_ratio > max(ratio):
            fallback_w = round(height * max(ratio))
        found = fits.any(1)
        w = torch.where(found, w, fallback_w)
        h = torch.where(found, h, fallback_h)
        top = torch.where(found, (torch.rand(count) * (height - h + 1)).long(), (height - h) // 2)
        left = torch.where(found, (torch.rand(count) * (width - w + 1)).long(), (width - w) // 2)
        resized = _resample(images[:, 0].float(), _bilinear_taps(top, h, size), _bilinear_taps(left, w, size))
        return resized.round_().clamp_(0, 255).to(torch.uint8).unsqueeze(1)


def image_dataset(
    images: LabelledImages,
    indices: Sequence[int],
    pre: Preprocess,
    train: bool,
    label_to_index: Mapping[str, int],
) -> Dataset:
    """The fast ``ArrayImageSubset`` where it applies, else ``ImageSubset`` with ``build_transform(pre, train)``."""
    if array_path_applies(images, pre):
        return ArrayImageSubset(images, indices, pre, train, label_to_index)
    return ImageSubset(images, indices, build_transform(pre, train), label_to_index)


class TwoViews(Dataset):
    """Each item of ``dataset`` drawn twice: (view, second view, class index), two independent draws of
    its training augmentation (what a self-supervised task such as DiVA's contrasts)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        (first, target), (second, _) = self.dataset[k], self.dataset[k]
        return first, second, target

    def __getitems__(self, ks: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        many = getattr(self.dataset, "__getitems__", None)
        firsts = many(ks) if many else [self.dataset[k] for k in ks]
        seconds = many(ks) if many else [self.dataset[k] for k in ks]
        return [(a, b, target) for (a, target), (b, _) in zip(firsts, seconds, strict=True)]
