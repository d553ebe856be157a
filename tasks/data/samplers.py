"""Class-balanced batches for DML training (the paper: batch 112 = 56 classes x 2 samples per class)."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size // samples_per_class`` classes x ``samples_per_class`` images.

    ``replacement=False`` (distinct): classes are drawn uniformly without replacement within a batch; a
    class's images without replacement, or with replacement only when it has fewer than
    ``samples_per_class``. ``replacement=True`` is the ooDML code's ``class_random_sampler``: every class
    slot of a batch is an independent uniform draw of a class, and every image of a slot an independent
    uniform draw from that class, so a batch may hold a class twice and an image twice (with 100
    classes and 56 slots, about 13 slots repeat a class). Batches are a pure function of
    ``(seed, epoch)``: iterating twice gives the same batches, ``set_epoch`` varies them.
    ``num_batches`` defaults to ``len(labels) // batch_size`` (about one pass over the data).
    Yields lists of positions into ``labels``.
    """

    def __init__(
        self,
        labels: Sequence[Hashable],
        batch_size: int,
        samples_per_class: int,
        seed: int,
        num_batches: int | None = None,
        replacement: bool = False,
    ) -> None:
        if samples_per_class < 1 or batch_size < samples_per_class or batch_size % samples_per_class:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of samples_per_class ({samples_per_class})"
            )
        _, codes = np.unique(np.asarray(labels), return_inverse=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        self.members = np.split(order, bounds) if len(order) else []
        self.classes_per_batch = batch_size // samples_per_class
        self.replacement = replacement
        if not replacement and len(self.members) < self.classes_per_batch:
            raise ValueError(
                f"a batch needs {self.classes_per_batch} distinct classes (batch_size {batch_size} / "
                f"samples_per_class {samples_per_class}) but the labels hold only {len(self.members)}"
            )
        self.samples_per_class = samples_per_class
        self.seed = seed
        self.num_batches = len(labels) // batch_size if num_batches is None else num_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.num_batches):
            batch = []
            for c in rng.choice(len(self.members), self.classes_per_batch, replace=self.replacement):
                members = self.members[c]
                replace = self.replacement or len(members) < self.samples_per_class
                batch.extend(rng.choice(members, self.samples_per_class, replace=replace).tolist())
            yield batch
