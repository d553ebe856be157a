"""A split checked against the dataset it will run on, before any training starts.

A trial fails late, and after hours of queueing, if its split names a class or a support image the
dataset does not hold, or asks for more support images than a test class has; these checks find that
in one pass over the class lists. Each returns what is wrong (empty: nothing), the caller words the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from tasks.data.base import LabelledImages
from tasks.splits.episodes import is_whole_class
from tasks.splits.files import Split


def class_sizes(images: LabelledImages) -> dict[str, int]:
    """Number of images of every class."""
    sizes: dict[str, int] = {}
    for label in images.labels:
        sizes[label] = sizes.get(label, 0) + 1
    return sizes


def unknown_classes(split: Split, sizes: dict[str, int]) -> list[str]:
    """Classes the split names (train or test side) that the dataset does not hold, sorted."""
    return sorted({*split.train, *split.test} - set(sizes))


@dataclass(frozen=True)
class MissingSupport:
    """A few-shot support image an episode names but the dataset does not hold."""

    shots: int
    episode: int
    class_name: str
    image: str


def missing_support_images(split: Split, images: LabelledImages) -> list[MissingSupport]:
    """Support images of the split's episodes that are not in the dataset.

    Matched as ``tasks.fewshot.resolve_episode`` does: by image id, or by base name within the class
    (ooDML pickles store base names).
    """
    known: dict[str, set[str]] = {}
    for image_id, label in zip(images.image_ids, images.labels, strict=True):
        known.setdefault(label, set()).update((image_id, PurePosixPath(image_id).name))
    return [
        MissingSupport(shots, e, class_name, image)
        for shots, episodes in sorted(split.episodes.items())
        for e, episode in enumerate(episodes)
        if not is_whole_class(episode)
        for class_name, files in episode.items()
        for image in files
        if image not in known.get(class_name, ())
    ]
