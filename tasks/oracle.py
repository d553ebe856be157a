"""The shift-vs-difficulty control's data: the held-out half of a split's test classes, and the oracle's
training set (docs/oracle.md).

An oracle trial trains its method on the training half of every kept test class (``tasks.splits.heldout``)
instead of the split's train classes, keeps its last epoch (``tasks.roles.Oracle``), and is
evaluated on the held-out half; a benchmark trial with ``heldout`` set evaluates its selected model on the
same held-out half, so both are measured on the same images.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tasks.config import HeldoutConfig
from tasks.data import ArrayLoader, LabelledImages
from tasks.data.verify import IndexedLoad
from tasks.splits.files import Split
from tasks.splits.heldout import HeldoutDivision, heldout_division


def divide_test_classes(images: LabelledImages, split: Split, heldout: HeldoutConfig) -> HeldoutDivision:
    """The held-out division of ``split``'s test classes (by image id)."""
    by_class = images.indices_by_class()
    ids = {c: [images.image_ids[i] for i in by_class[c]] for c in split.test}
    return heldout_division(ids, split.test, heldout.fraction, heldout.seed)


def indices_of_ids(images: LabelledImages, halves: dict[str, list[str]]) -> np.ndarray:
    """The indices of the images named in ``halves`` (class -> image ids), increasing."""
    position = {image_id: i for i, image_id in enumerate(images.image_ids)}
    return np.sort(np.array([position[i] for ids in halves.values() for i in ids], dtype=np.int64))


def oracle_training_set(
    images: LabelledImages, split: Split, division: HeldoutDivision
) -> tuple[LabelledImages, Split]:
    """The images of the training halves only, and a split whose train classes (all of them in
    ``split_train``, none for validation) are the kept test classes: what ``tasks.train.train_model``
    trains an oracle on. The split keeps the original's id, key and FID."""
    indices = indices_of_ids(images, division.train)
    classes = division.classes
    subset = dataclasses.replace(
        images,
        image_ids=tuple(images.image_ids[i] for i in indices),
        labels=tuple(images.labels[i] for i in indices),
        default_train=tuple(classes),
        default_test=(),
        load=_subset_load(images, indices),
    )
    oracle = Split(
        id=split.id,
        key=split.key,
        progression=split.progression,
        fid=split.fid,
        train=classes,
        test=[],
        split_train=classes,
        split_val=[],
    )
    return subset, oracle


def _subset_load(images: LabelledImages, indices: np.ndarray):
    """An array-backed dataset stays array-backed (the loaders' fast path); any other loads by index."""
    if isinstance(images.load, ArrayLoader):
        return ArrayLoader(images.load.pixels[indices])
    return IndexedLoad(images.load, tuple(int(i) for i in indices))
