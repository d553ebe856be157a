"""Train/validation division of a split's train classes, and few-shot episodes on its test classes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_SHOTS = (2, 5, 10)
DEFAULT_EPISODES = 10

# An episode maps every test class it uses to the ids of its support images; the query set is the rest
# of each such class's images (DESIGN.md section 6).
Episode = dict[str, list[str]]


def train_val_division(
    train_classes: Sequence[str], seed: int, val_fraction: float = 0.25
) -> tuple[list, list]:
    """About 3:1 (ceil of a quarter for validation, as in the ooDML files: 98 -> 73/25), seeded, sorted."""
    n_val = math.ceil(len(train_classes) * val_fraction)
    if not 0 < n_val < len(train_classes):
        raise ValueError(f"cannot divide {len(train_classes)} train classes into train and validation parts")
    rng = np.random.default_rng(seed)
    val = set(rng.choice(sorted(train_classes), size=n_val, replace=False).tolist())
    return sorted(c for c in train_classes if c not in val), sorted(val)


def few_shot_episodes(
    images_by_class: Mapping[str, Sequence[str]],
    test_classes: Sequence[str],
    shots: int,
    episodes: int,
    seed: int,
) -> tuple[list[Episode], list[str]]:
    """``episodes`` support sets of ``shots`` images per test class, seeded.

    A class needs ``shots + 1`` images (at least one query); smaller classes are left out of every
    episode of this shot count and returned, sorted, as the second value so callers can report them.
    """
    if shots < 1 or episodes < 1:
        raise ValueError(f"few-shot episodes need shots >= 1 and episodes >= 1, got {shots} and {episodes}")
    usable = [c for c in test_classes if len(images_by_class[c]) > shots]
    too_small = sorted(c for c in test_classes if len(images_by_class[c]) <= shots)
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(episodes):
        result.append(
            {
                c: sorted(rng.choice(sorted(images_by_class[c]), size=shots, replace=False).tolist())
                for c in usable
            }
        )
    return result, too_small
