"""One training epoch of glyph data: the batched array path against per-image PIL + ``build_transform``;
and JPEG decoding + the paper's transforms at 224, in images/s per DataLoader worker.

Glyphs: both go through a DataLoader with class-balanced batches (32 classes x 4 images, the demo
trial's) in the same process; prints each time and the ratio.

JPEG (sizing ``num_workers``): synthetic JPEGs of CUB-200-like sizes (500 px on the long side, written to a
temporary folder) read through ``ImageSubset``, the path every photo dataset takes, with the train
transform (decode, RandomResizedCrop 224, flip, normalise) and the evaluation transform (decode, Resize
256, CenterCrop 224): images/s of one process on one torch thread, which is what one DataLoader worker
does (workers run on one thread), against the bare decode (``PIL.Image.open(...).convert("RGB")``) in
the same run. With ``--workers 1,2,...`` it also times a DataLoader with that many workers. A GPU that
trains at G images/s (``benchmarks/bench_gpu_trial.py`` prints the bare figure) needs about
ceil(G / per-worker train images/s) workers, within the cores left after the training process.
Usage:

    python benchmarks/bench_data_loading.py [--root GLYPH_CACHE] [--epochs 1] [--threads N]
        [--jpeg-images 256] [--workers 0,2] [--no-glyphs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from tasks.data import ClassBalancedBatchSampler, ImageSubset, build_dataset, image_dataset
from tasks.data.transforms import GLYPH, IMAGENET, build_transform

sys.path.insert(0, str(Path(__file__).parent))
from loadavg import load  # noqa: E402
from synthetic_images import write_image_folder  # noqa: E402


def time_epochs(dataset: torch.utils.data.Dataset, targets: list[int], epochs: int) -> float:
    sampler = ClassBalancedBatchSampler(targets, batch_size=128, samples_per_class=4, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler)
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for images, _ in loader:
            assert images.shape[1:] == (1, 32, 32)
    return time.perf_counter() - start


def jpeg_rates(count: int, workers: list[int]) -> None:
    """Images/s of JPEG decoding + the 224 transforms on one thread, and through DataLoader workers."""
    with tempfile.TemporaryDirectory() as tmp:
        classes = max(1, count // 8)
        write_image_folder(Path(tmp), classes, 8)
        images = build_dataset("imagefolder", tmp)
        everything = list(range(len(images)))
        label_to_index = {c: i for i, c in enumerate(images.classes)}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            rates = {}
            start = time.perf_counter()
            for i in everything:
                Image.open(images.root / images.image_ids[i]).convert("RGB").load()
            rates["decode only"] = len(everything) / (time.perf_counter() - start)
            for name, train in (("decode + train", True), ("decode + eval", False)):
                dataset = ImageSubset(images, everything, build_transform(IMAGENET, train), label_to_index)
                dataset[0]
                start = time.perf_counter()
                for k in everything:
                    dataset[k]
                rates[name] = len(everything) / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(threads)
        print(f"JPEG at 224 ({len(everything)} synthetic CUB-like images, one thread = one worker); {load()}")
        for name, rate in rates.items():
            print(f"{name:>15}: {rate:7.1f} images/s per worker ({1e3 / rate:5.2f} ms/image)")
        print(
            f"train transform / bare decode: {rates['decode only'] / rates['decode + train']:.2f}x the time"
        )
        dataset = ImageSubset(images, everything, build_transform(IMAGENET, True), label_to_index)
        for count_workers in workers:
            loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=count_workers)
            start = time.perf_counter()
            seen = sum(len(x) for x, _ in loader)
            seconds = time.perf_counter() - start
            print(
                f"DataLoader, {count_workers} workers (start-up included): {seen / seconds:7.1f} images/s; {load()}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", help="glyph cache folder (default: $OODML_CACHE/glyphs or ~/.cache/oodml/glyphs)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--jpeg-images", type=int, default=256, help="synthetic JPEGs (0: skip this part)")
    parser.add_argument("--workers", default="", help="comma-separated DataLoader worker counts to time")
    parser.add_argument("--no-glyphs", action="store_true", help="skip the glyph comparison")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.jpeg_images:
        jpeg_rates(args.jpeg_images, [int(w) for w in args.workers.split(",") if w])
    if args.no_glyphs:
        return
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
    print(f"ratio (PIL / array): {seconds['PIL per image'] / seconds['array batches']:.1f}x; {load()}")


if __name__ == "__main__":
    main()
