"""The labelled image collection every dataset resolves to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


class DatasetError(ValueError):
    """A dataset on disk is missing, laid out wrongly, or holds an unusable file."""


@dataclass(frozen=True)
class LabelledImages:
    """Images with class names, plus the dataset's default train/test class partition.

    ``image_ids`` are unique and stable (paths relative to ``root`` for datasets on disk); split files
    and few-shot episodes refer to images by these ids. ``load(i)`` returns image ``i`` as an RGB or
    greyscale PIL image.
    """

    name: str
    root: Path
    image_ids: tuple[str, ...]
    labels: tuple[str, ...]
    default_train: tuple[str, ...]
    default_test: tuple[str, ...]
    load: Callable[[int], Image.Image] = field(repr=False, compare=False)
    superclasses: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.image_ids) != len(self.labels):
            raise DatasetError(f"{self.name}: {len(self.image_ids)} images but {len(self.labels)} labels")
        overlap = set(self.default_train) & set(self.default_test)
        if overlap:
            raise DatasetError(f"{self.name}: default train and test share classes {sorted(overlap)[:5]}")

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def classes(self) -> list[str]:
        """Class names in the order of the default partition (train classes, then test classes)."""
        return list(self.default_train) + list(self.default_test)

    def indices_by_class(self) -> dict[str, np.ndarray]:
        """Image indices of every class, each in increasing order."""
        labels = np.asarray(self.labels)
        order = np.argsort(labels, kind="stable")
        names, starts = np.unique(labels[order], return_index=True)
        bounds = list(starts[1:]) + [len(order)]
        return {str(n): order[s:e] for n, s, e in zip(names, starts, bounds, strict=True)}

    def indices_of(self, class_names: Sequence[str]) -> np.ndarray:
        """Indices of all images whose class is in ``class_names`` (increasing order)."""
        by_class = self.indices_by_class()
        missing = [c for c in class_names if c not in by_class]
        if missing:
            raise DatasetError(
                f"{self.name}: classes {missing[:5]} (of {len(missing)}) are not in the dataset at {self.root}; "
                "check that the split file was built for this dataset"
            )
        if not class_names:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate([by_class[c] for c in class_names]))
