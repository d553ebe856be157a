"""One training epoch of glyph data: the batched array path against per-image PIL + ``build_transform``.

Both go through a DataLoader with class-balanced batches (32 classes x 4 images, the demo trial's) in the
same process; prints each time and the ratio. Usage:

    python benchmarks/bench_data_loading.py [--root GLYPH_CACHE] [--epochs 1] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from tasks.data import ClassBalancedBatchSampler, ImageSubset, build_dataset, image_dataset
from tasks.data.transforms import GLYPH, build_transform


def time_epochs(dataset: torch.utils.data.Dataset, targets: list[int], epochs: int) -> float:
    sampler = ClassBalancedBatchSampler(targets, batch_size=128, samples_per_class=4, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler)
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for images, _ in loader:
            assert images.shape[1:] == (1, 32, 32)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", help="glyph cache folder (default: $OODML_CACHE/glyphs or ~/.cache/oodml/glyphs)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = build_dataset("glyphs", args.root)
    train = images.indices_of(images.default_train)
    label_to_index = {c: i for i, c in enumerate(images.classes)}
    fast = image_dataset(images, train, GLYPH, True, label_to_index)
    reference = ImageSubset(images, train, build_transform(GLYPH, True), label_to_index)
    targets = fast.targets.tolist()
    print(f"{len(train)} training images, {args.epochs} epoch(s), {torch.get_num_threads()} torch threads")
    seconds = {}
    for name, dataset in (("array batches", fast), ("PIL per image", reference)):
        seconds[name] = time_epochs(dataset, targets, args.epochs)
        print(
            f"{name:>14}: {seconds[name]:7.3f} s  ({seconds[name] / len(train) / args.epochs * 1e6:6.1f} us/image)"
        )
    print(f"ratio (PIL / array): {seconds['PIL per image'] / seconds['array batches']:.1f}x")


if __name__ == "__main__":
    main()
