"""The data check before a study: ``find_unreadable`` (JPEGs decoded at 1/8 scale) against full decodes.

Writes a CUB-like tree of photo-sized JPEGs (500 x 375, a few of them truncated) to a temporary folder,
then in the same run times ``find_unreadable`` with an empty verification record and the same thread
pool decoding every image fully (what the check did before); both must find the same bad files.

    python benchmarks/bench_verify.py [--images 600]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.data import DatasetError, build_dataset, find_unreadable

TRUNCATED = 3


def write_tree(root: Path, n_images: int) -> None:
    rng = np.random.default_rng(0)
    for k in range(n_images):
        folder = root / "images" / f"{k % 20 + 1:03d}.class_{k % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = Image.fromarray((rng.random((26, 26, 3)) * 255).astype(np.uint8)).resize((500, 375))
        noise = Image.fromarray((rng.random((375, 500, 3)) * 255).astype(np.uint8))
        path = folder / f"img{k}.jpg"
        Image.blend(coarse, noise, 0.15).save(path, "JPEG", quality=90)
        if k < TRUNCATED:
            path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


def full_decode_problems(images) -> list[int]:
    def bad(i: int) -> bool:
        try:
            images.load(i)
        except DatasetError:
            return True
        return False

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        flags = list(pool.map(bad, range(len(images)), chunksize=64))
    return [i for i, b in enumerate(flags) if b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OODML_CACHE"] = str(Path(tmp) / "cache")  # no remembered files
        write_tree(Path(tmp) / "cub", args.images)
        images = build_dataset("cub200", Path(tmp) / "cub", num_train_classes=10)
        start = time.perf_counter()
        reference = full_decode_problems(images)
        t_full = time.perf_counter() - start
        start = time.perf_counter()
        found = [p.index for p in find_unreadable(images)]
        t_check = time.perf_counter() - start
    assert found == reference and len(found) == TRUNCATED, (found, reference)
    per = lambda t: t / len(images) * 1e3  # noqa: E731
    print(
        f"{len(images)} JPEGs of 500x375, {TRUNCATED} truncated (both find them): full decode "
        f"{per(t_full):.2f} ms/image, find_unreadable {per(t_check):.2f} ms/image; ratio full/check "
        f"{t_full / t_check:.2f}x"
    )


if __name__ == "__main__":
    main()
