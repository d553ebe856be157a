"""Open every image once, then fail on unreadable files or drop them with a report.

Image files that decoded once are remembered by size and modification time (``$OODML_CACHE/verified``),
so a study that checks its data on every run or resume decodes only new or changed files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from PIL import Image
from tqdm import tqdm

from tasks.data.base import DatasetError, LabelledImages
from tasks.data.cache import atomic_write, cache_root

# What a dataset does with images that cannot be decoded (the ``unreadable_images`` dataset option):
# "fail" lets loading an unreadable image fail, "skip" decodes every image up front and drops those.
UNREADABLE_POLICIES = ("fail", "skip")


@dataclass(frozen=True)
class UnreadableImage:
    """One image that could not be decoded, and why."""

    index: int
    image_id: str
    reason: str


@dataclass(frozen=True)
class IndexedLoad:
    """``load`` of a subset: position ``i`` of the subset is image ``indices[i]`` of the parent."""

    load: Callable[[int], Image.Image]
    indices: tuple[int, ...]

    def __call__(self, i: int) -> Image.Image:
        return self.load(self.indices[i])

    def path(self, i: int) -> Path:
        return self.load.path(self.indices[i])

    def check(self, i: int) -> object:
        return _checker(self.load)(self.indices[i])


def _checker(load: Callable[[int], Image.Image]) -> Callable[[int], object]:
    """The cheapest call that fails exactly when ``load`` would: its ``check`` where it has one."""
    return getattr(load, "check", load)


def select_images(images: LabelledImages, indices: Sequence[int]) -> LabelledImages:
    """The images at ``indices``, keeping the default partition (every class must keep an image)."""
    indices = tuple(int(i) for i in indices)
    labels = tuple(images.labels[i] for i in indices)
    emptied = sorted(set(images.classes) - set(labels))
    if emptied:
        raise DatasetError(
            f"{images.name}: classes {emptied[:5]} (of {len(emptied)}) at {images.root} would have no images "
            "left; restore their files"
        )
    return replace(
        images,
        image_ids=tuple(images.image_ids[i] for i in indices),
        labels=labels,
        load=IndexedLoad(images.load, indices),
    )


def _problem(images: LabelledImages, i: int) -> UnreadableImage | None:
    try:
        _checker(images.load)(i)
    except DatasetError as error:  # the decoder's own words where the loader kept them
        return UnreadableImage(i, images.image_ids[i], str(error.__cause__ or error))
    return None


def _on_disk(images: LabelledImages) -> bool:
    """Whether ``images.load`` reads files (and so has ``path(i)``), through any subset selections."""
    load = images.load
    while isinstance(load, IndexedLoad):
        load = load.load
    return hasattr(load, "path")


class VerifiedFiles:
    """The image files of a dataset known to decode, keyed by path, with their size and mtime then."""

    def __init__(self, images: LabelledImages) -> None:
        self.path_of = images.load.path
        key = hashlib.sha256(f"{images.name}\0{images.root}".encode()).hexdigest()[:16]
        self.record = cache_root() / "verified" / f"{images.name}-{key}.json"
        try:
            self.known: dict[str, str] = json.loads(self.record.read_text())
        except (OSError, ValueError):  # none yet, or unreadable: verify everything again
            self.known = {}

    @staticmethod
    def stamp(path: Path) -> str | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def unchanged(self, i: int) -> bool:
        path = self.path_of(i)
        stamp = self.stamp(path)
        return stamp is not None and self.known.get(str(path)) == stamp

    def save(self, good: Iterable[int]) -> None:
        for i in good:
            path = self.path_of(i)
            self.known[str(path)] = self.stamp(path)
        with atomic_write(self.record) as handle:
            handle.write(json.dumps(self.known).encode())


def find_unreadable(images: LabelledImages, progress: bool = False) -> list[UnreadableImage]:
    """Every image that fails to decode, in index order (decoded on threads: PIL releases the GIL).
    Files that decoded before and have not changed since are not decoded again."""
    verified = VerifiedFiles(images) if _on_disk(images) else None
    todo = [i for i in range(len(images)) if verified is None or not verified.unchanged(i)]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda i: _problem(images, i), todo, chunksize=64)
        found = tqdm(results, total=len(todo), desc=f"verify {images.name}", disable=not progress)
        problems = [p for p in found if p is not None]
    if verified is not None and todo:
        bad = {p.index for p in problems}
        verified.save(i for i in todo if i not in bad)
    return problems


def describe_unreadable(problems: Sequence[UnreadableImage], shown: int = 10) -> str:
    """One indented line per image (the first ``shown``), then how many more."""
    listed = "\n".join(f"  {p.image_id}: {p.reason}" for p in problems[:shown])
    more = f"\n  ... and {len(problems) - shown} more" if len(problems) > shown else ""
    return listed + more


def verify_images(
    images: LabelledImages, on_error: Literal["raise", "skip"] = "raise", progress: bool = False
) -> tuple[LabelledImages, list[UnreadableImage]]:
    """Decode every image once; ``raise`` lists all unreadable files, ``skip`` drops them and reports them."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    problems = find_unreadable(images, progress)
    if not problems:
        return images, []
    if on_error == "raise":
        raise DatasetError(
            f"{images.name}: {len(problems)} unreadable images under {images.root}:\n"
            f"{describe_unreadable(problems)}\nreplace them, or pass on_error='skip' to drop them"
        )
    bad = {p.index for p in problems}
    return select_images(images, [i for i in range(len(images)) if i not in bad]), problems
