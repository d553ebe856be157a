"""ClassBalancedBatchSampler invariants."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tasks.data import ClassBalancedBatchSampler

# 10 classes of 1..10 images, shuffled positions
LABELS = list(np.random.default_rng(0).permutation(np.repeat(np.arange(10), np.arange(1, 11))))


def test_batches_hold_distinct_classes_times_samples_per_class() -> None:
    sampler = ClassBalancedBatchSampler(LABELS, batch_size=12, samples_per_class=3, seed=0, num_batches=50)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50
    for batch in batches:
        assert len(batch) == 12 and all(0 <= i < len(LABELS) for i in batch)
        per_class = Counter(LABELS[i] for i in batch)
        assert len(per_class) == 4 and set(per_class.values()) == {3}
        for label in per_class:
            picked = [i for i in batch if LABELS[i] == label]
            if LABELS.count(label) >= 3:
                assert len(set(picked)) == 3  # without replacement when the class is large enough


def test_small_classes_are_sampled_with_replacement() -> None:
    labels = [0, 1, 1, 2, 2, 2]
    for batch in ClassBalancedBatchSampler(labels, batch_size=9, samples_per_class=3, seed=1, num_batches=5):
        assert [i for i in batch if labels[i] == 0] == [0, 0, 0]


def test_reproducible_per_epoch_and_seed() -> None:
    sampler = ClassBalancedBatchSampler(LABELS, 8, 2, seed=0)
    first = list(sampler)
    assert list(sampler) == first and len(first) == len(LABELS) // 8
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(ClassBalancedBatchSampler(LABELS, 8, 2, seed=1)) != first


def test_classes_are_drawn_uniformly() -> None:
    sampler = ClassBalancedBatchSampler(LABELS, 4, 2, seed=0, num_batches=2000)
    counts = Counter(LABELS[i] for batch in sampler for i in batch[::2])
    assert max(counts.values()) / min(counts.values()) < 1.2  # 800 draws per class expected


def test_string_labels_work() -> None:
    batch = next(iter(ClassBalancedBatchSampler(["a", "b", "a", "b"], 4, 2, seed=0)))
    assert sorted(batch) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("batch_size", "samples_per_class", "message"),
    [(10, 3, "multiple of samples_per_class"), (24, 2, "needs 12 distinct classes .* only 10")],
)
def test_clear_errors(batch_size: int, samples_per_class: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassBalancedBatchSampler(LABELS, batch_size, samples_per_class, seed=0)


def test_with_replacement_draws_every_slot_and_image_independently() -> None:
    """The ooDML sampler: 56 class slots over 100 classes repeat a class 100 (1 - 0.99^56) short of 56
    times on average; 2 draws from a class of 4 images are the same image with probability 1/4."""
    labels = np.repeat(np.arange(100), 4)
    sampler = ClassBalancedBatchSampler(
        labels, batch_size=112, samples_per_class=2, seed=0, num_batches=400, replacement=True
    )
    distinct, same_image, slots = [], 0, 0
    for batch in sampler:
        assert len(batch) == 112
        distinct.append(len({labels[i] for i in batch}))
        pairs = list(zip(batch[::2], batch[1::2], strict=True))
        assert all(labels[a] == labels[b] for a, b in pairs)  # each slot: 2 images of one class
        same_image += sum(a == b for a, b in pairs)
        slots += len(pairs)
    assert np.mean(distinct) == pytest.approx(100 * (1 - 0.99**56), abs=0.3)
    assert same_image / slots == pytest.approx(0.25, abs=0.02)
    without = ClassBalancedBatchSampler(labels, batch_size=112, samples_per_class=2, seed=0, num_batches=50)
    assert all(len({labels[i] for i in b}) == 56 and len(set(b)) == 112 for b in without)
