"""Train/validation division of a split's train classes, and few-shot episodes on its test classes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np

from tasks.registry import Registry

DEFAULT_SHOTS = (2, 5, 10)
# The paper's few-shot budgets; a whole-class support of 10 shots per class would need more images
# than SOP's test classes hold (about 5 each).
DEFAULT_CLASS_SHOTS = (2, 5)
DEFAULT_EPISODES = 10

# Two kinds of episode (docs/protocol.md section 5), both as the ooDML split files store them:
# - per-image support: every test class it uses -> the ids of its support images; the queries are the
#   rest of each such class's images;
# - whole-class support (SOP, whose classes hold only a few images): the list of test classes whose
#   images all form the support; the queries are the images of the other test classes.
ImageEpisode = dict[str, list[str]]
ClassEpisode = list[str]
Episode = ImageEpisode | ClassEpisode
Support = Literal["images", "classes"]


def default_shots(support: Support) -> tuple[int, ...]:
    """The shot budgets a split file gets unless told otherwise."""
    return DEFAULT_SHOTS if support == "images" else DEFAULT_CLASS_SHOTS


def is_whole_class(episode: Episode) -> bool:
    """Whether the episode's support is whole test classes (the queries then are the other classes)."""
    return isinstance(episode, list)


def has_support(episode: Episode) -> bool:
    """Whether the episode names any support at all (files built without shots have none)."""
    return bool(episode) if is_whole_class(episode) else any(episode.values())


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


MIN_QUERY_IMAGES = 2


def images_needed(shots: int) -> int:
    """Images a test class needs for a per-image budget of ``shots``: the support plus 2 queries."""
    return shots + MIN_QUERY_IMAGES


def too_small(size: int, shots: int) -> bool:
    """Whether a class of ``size`` images keeps fewer than 2 queries after ``shots`` support images."""
    return size < images_needed(shots)


def too_small_classes(classes: Iterable[str], sizes: Mapping[str, int], shots: int) -> dict[str, int]:
    """Classes of ``classes`` too small for ``shots`` -> their size, smallest first (unknown ones skipped)."""
    small = {c: sizes[c] for c in set(classes) if c in sizes and too_small(sizes[c], shots)}
    return dict(sorted(small.items(), key=lambda item: (item[1], item[0])))


def few_shot_episodes(
    images_by_class: Mapping[str, Sequence[str]],
    test_classes: Sequence[str],
    shots: int,
    episodes: int,
    seed: int,
) -> tuple[list[Episode], list[str]]:
    """``episodes`` support sets of ``shots`` images per test class, seeded.

    A class needs ``images_needed(shots)`` images (the support plus 2 queries); smaller classes are left
    out of every episode of this shot count and returned, sorted, as the second value so callers can
    report them.
    """
    if shots < 1 or episodes < 1:
        raise ValueError(f"few-shot episodes need shots >= 1 and episodes >= 1, got {shots} and {episodes}")
    usable = [c for c in test_classes if not too_small(len(images_by_class[c]), shots)]
    left_out = sorted(c for c in test_classes if too_small(len(images_by_class[c]), shots))
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(episodes):
        result.append(
            {
                c: sorted(rng.choice(sorted(images_by_class[c]), size=shots, replace=False).tolist())
                for c in usable
            }
        )
    return result, left_out


def whole_class_max_shots(class_sizes: Sequence[int]) -> int:
    """The largest shot count whose whole-class support leaves two query classes under any shuffle: its
    budget fits beside the two largest classes."""
    sizes = sorted(class_sizes)
    return (sum(sizes) - sum(sizes[-2:])) // max(len(sizes), 1)


def whole_class_episodes(
    images_by_class: Mapping[str, Sequence[str]],
    test_classes: Sequence[str],
    shots: int,
    episodes: int,
    seed: int,
) -> tuple[list[ClassEpisode], list[str]]:
    """``episodes`` supports of whole test classes, each holding as many labelled images as ``shots`` per class.

    An SOP support is a set of whole classes (docs/protocol.md section 5); how many is ours: we match the
    labelling budget of the per-image protocol: the support is the shortest prefix of a seeded
    permutation of the test classes holding at least ``shots x #test classes`` images, so the budgets
    stay comparable across datasets. At least two test classes must remain as queries. No class is left
    out, so the second value (classes too small for the budget) is always empty.
    """
    if shots < 1 or episodes < 1:
        raise ValueError(f"few-shot episodes need shots >= 1 and episodes >= 1, got {shots} and {episodes}")
    classes = sorted(test_classes)
    sizes = np.array([len(images_by_class[c]) for c in classes])
    budget = shots * len(classes)
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(episodes):
        order = rng.permutation(len(classes))
        taken = int(np.searchsorted(np.cumsum(sizes[order]), budget)) + 1
        if taken > len(classes) - 2:
            raise ValueError(
                f"{shots}-shot whole-class episodes need {budget} support images ({shots} x {len(classes)} "
                f"test classes) and at least 2 query classes, but the {len(classes)} test classes hold "
                f"{int(sizes.sum())} images; lower the shot count to at most {whole_class_max_shots(sizes)}"
            )
        result.append(sorted(classes[i] for i in order[:taken]))
    return result, []


EpisodeBuilder = Callable[[Mapping[str, Sequence[str]], Sequence[str], int, int, int], tuple[list, list[str]]]
EPISODE_BUILDERS: Registry[EpisodeBuilder] = Registry("episode builder", plural="episode builders")
EPISODE_BUILDERS.register(few_shot_episodes, name="images")
EPISODE_BUILDERS.register(whole_class_episodes, name="classes")
