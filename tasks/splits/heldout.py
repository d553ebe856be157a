"""The held-out half of a split's test classes: what the shift-vs-difficulty control (the oracle) and the
methods are compared on (docs/oracle.md).

Per test class, a seeded shuffle of its images (its image ids, sorted, shuffled by a generator seeded with
``seed`` and the class name, so a class is divided the same way in every split that holds it); the first
``round(fraction x size)`` images, clamped to leave at least ``MIN_HALF`` on each side, are the oracle's
training half, the rest the held-out half. A class of fewer than ``2 x MIN_HALF`` images is left out of
both halves and counted: every held-out query keeps a positive, and the oracle sees two images at least of
every class it is evaluated on.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tasks.splits.episodes import MIN_QUERY_IMAGES

MIN_HALF = MIN_QUERY_IMAGES  # images on each side of a kept class (2: a held-out query has a positive)


@dataclass(frozen=True)
class HeldoutDivision:
    """Image ids per kept test class: the oracle trains on ``train``; everyone is evaluated on ``heldout``
    (retrieval among the held-out images only). ``left_out``: classes too small to divide, sorted."""

    train: dict[str, list[str]]
    heldout: dict[str, list[str]]
    left_out: list[str]

    @property
    def classes(self) -> list[str]:
        """The kept test classes, sorted."""
        return sorted(self.heldout)


def divisible(size: int) -> bool:
    """Whether a test class of ``size`` images is kept (divided into two halves) rather than left out."""
    return size >= 2 * MIN_HALF


def kept_classes(classes: Sequence[str], sizes: Mapping[str, int]) -> list[str]:
    """The classes of ``classes`` the division keeps (``sizes``: images per class; an unknown class has
    none), sorted: the classes an oracle trains and is evaluated on."""
    return sorted(c for c in classes if divisible(sizes.get(c, 0)))


def training_size(size: int, fraction: float) -> int:
    """Images of a class of ``size`` in the oracle's training half: ``round(fraction x size)`` (halves
    rounded up), at least ``MIN_HALF`` and leaving ``MIN_HALF`` held out."""
    return min(max(math.floor(fraction * size + 0.5), MIN_HALF), size - MIN_HALF)


def heldout_division(
    images_by_class: Mapping[str, Sequence[str]], classes: Sequence[str], fraction: float, seed: int
) -> HeldoutDivision:
    """Divide each of ``classes`` (image ids in ``images_by_class``) into the oracle's training half and the
    held-out half, as the module docstring says."""
    if not 0 < fraction < 1:
        raise ValueError(f"the oracle's training fraction must lie strictly between 0 and 1, got {fraction}")
    train, heldout, left_out = {}, {}, []
    for name in sorted(classes):
        ids = sorted(images_by_class[name])
        if not divisible(len(ids)):
            left_out.append(name)
            continue
        order = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(len(ids))
        k = training_size(len(ids), fraction)
        train[name] = sorted(ids[i] for i in order[:k])
        heldout[name] = sorted(ids[i] for i in order[k:])
    return HeldoutDivision(train, heldout, left_out)
