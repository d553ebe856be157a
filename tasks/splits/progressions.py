"""The ooDML split progressions (DESIGN.md section 3; Milbich, Roth et al., NeurIPS 2021).

Starting from a dataset's default train/test class partition, a progression moves classes between the
two sides step by step so that the FID between train and test class means grows (``harder``), shrinks
(``easier``), or grows beyond what swapping reaches by removing classes (``removal``). Every step
records its partition and FID before changing it; a split is identified by its progression and key
(the number of swaps done so far, negative for the easier direction, prefixed ``R`` for removal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from tasks.splits.fid import EPS, fid, fid_from_gram


@dataclass(frozen=True)
class ProgressionSettings:
    """N steps of K swaps each, with a swap history of length H (positions not reused within H picks)."""

    steps: int
    swaps_per_step: int
    history: int

    def __post_init__(self) -> None:
        if self.steps < 0 or self.swaps_per_step < 1 or self.history < 0:
            raise ValueError(
                f"progression settings need steps >= 0, swaps_per_step >= 1, history >= 0: {self}"
            )


@dataclass(frozen=True)
class ProgressionConfig:
    """All three progressions; the defaults are the published CUB200/CARS196 settings."""

    harder: ProgressionSettings = ProgressionSettings(steps=25, swaps_per_step=2, history=5)
    easier: ProgressionSettings = ProgressionSettings(steps=15, swaps_per_step=2, history=30)
    removal: ProgressionSettings = ProgressionSettings(steps=35, swaps_per_step=2, history=5)


@dataclass(frozen=True)
class SplitStep:
    """One recorded partition of a progression."""

    progression: str
    key: str
    fid: float
    train: tuple[str, ...]
    test: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"key": self.key, "fid": self.fid, "train": list(self.train), "test": list(self.test)}


class PartitionFID:
    """FID of partitions of one fixed set of class means, paying for d-dimensional products once."""

    def __init__(self, means: np.ndarray, eps: float = EPS):
        self.means = np.asarray(means, dtype=np.float64)
        self.eps = eps
        self._gram = None
        if self.means.shape[0] <= self.means.shape[1]:
            centred = self.means - self.means.mean(axis=0)
            self._gram = centred @ centred.T

    def __call__(self, train: np.ndarray, test: np.ndarray) -> float:
        if self._gram is not None:
            return fid_from_gram(self._gram, train, test, self.means.shape[1], self.eps)
        return fid(self.means[train], self.means[test], self.eps)


def shift_scores(means: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position scores: |T_i - mS| - |T_i - mT| for train, |S_j - mT| - |S_j - mS| for test."""
    t, s = means[train], means[test]
    mean_t, mean_s = t.mean(axis=0), s.mean(axis=0)
    train_scores = np.linalg.norm(t - mean_s, axis=1) - np.linalg.norm(t - mean_t, axis=1)
    test_scores = np.linalg.norm(s - mean_t, axis=1) - np.linalg.norm(s - mean_s, axis=1)
    return train_scores, test_scores


class _SwapPicker:
    """Walks sorted score lists to pick swap positions, skipping the last H positions chosen per side."""

    def __init__(self, history: int):
        self.history = history
        self.train_chosen: list[int] = []
        self.test_chosen: list[int] = []

    def _recent(self, chosen: list[int]) -> set[int]:
        return set(chosen[-self.history :]) if self.history else set()

    def pick(self, train_order: np.ndarray, test_order: np.ndarray, k: int) -> tuple[int, int]:
        """The k-th swap of a step: walk both lists side by side from position k."""
        recent_train, recent_test = self._recent(self.train_chosen), self._recent(self.test_chosen)
        found_train = found_test = None
        for position in range(k, max(len(train_order), len(test_order))):
            if (
                found_train is None
                and position < len(train_order)
                and int(train_order[position]) not in recent_train
            ):
                found_train = int(train_order[position])
            if (
                found_test is None
                and position < len(test_order)
                and int(test_order[position]) not in recent_test
            ):
                found_test = int(test_order[position])
            if found_train is not None and found_test is not None:
                break
        if found_train is None or found_test is None:
            raise ValueError(
                f"no swap candidate left (history {self.history} too long for {len(train_order)} train / "
                f"{len(test_order)} test classes): lower the history or the swaps per step"
            )
        self.train_chosen.append(found_train)
        self.test_chosen.append(found_test)
        return found_train, found_test

    def pick_step(self, means: np.ndarray, train: np.ndarray, test: np.ndarray, k_swaps: int, harder: bool):
        train_scores, test_scores = shift_scores(means, train, test)
        sign = 1.0 if harder else -1.0
        train_order = np.argsort(sign * train_scores, kind="stable")
        test_order = np.argsort(sign * test_scores, kind="stable")
        return [self.pick(train_order, test_order, k) for k in range(k_swaps)]


def _swap(train: np.ndarray, test: np.ndarray, pairs: Sequence[tuple[int, int]]) -> None:
    for i, j in pairs:
        train[i], test[j] = test[j], train[i]


def _step(progression: str, key: str, value: float, names: Sequence[str], train, test) -> SplitStep:
    return SplitStep(progression, key, value, tuple(names[c] for c in train), tuple(names[c] for c in test))


def swap_progression(
    means: np.ndarray,
    names: Sequence[str],
    train: np.ndarray,
    test: np.ndarray,
    settings: ProgressionSettings,
    harder: bool,
    fid_of: PartitionFID | None = None,
) -> tuple[list[SplitStep], np.ndarray, np.ndarray]:
    """The harder (ascending scores) or easier (descending) progression.

    Returns the recorded steps and the final partition, i.e. the state after the swaps of the last
    step, one step beyond the last recorded split.
    """
    fid_of = fid_of or PartitionFID(means)
    train, test = np.array(train, copy=True), np.array(test, copy=True)
    picker = _SwapPicker(settings.history)
    name, sign = ("harder", 1) if harder else ("easier", -1)
    steps = []
    for s in range(settings.steps):
        steps.append(
            _step(name, str(sign * s * settings.swaps_per_step), fid_of(train, test), names, train, test)
        )
        _swap(train, test, picker.pick_step(means, train, test, settings.swaps_per_step, harder))
    return steps, train, test


def removal_progression(
    means: np.ndarray,
    names: Sequence[str],
    train: np.ndarray,
    test: np.ndarray,
    settings: ProgressionSettings,
    fid_of: PartitionFID | None = None,
) -> list[SplitStep]:
    """Class removal, from the state the harder progression ends in, with a fresh swap history.

    Each step records its partition, picks K pairs as the harder direction does and swaps them. As
    DESIGN.md section 3 specifies (following the ooDML reference, ``split_maker_with_class_removal``),
    when the FID after the swaps is greater than or equal to the FID before them, the swaps are undone
    and the picked classes are removed from their sides instead. The swap history keeps the list
    positions it picked across removals, unrenumbered, as the reference's does.
    """
    fid_of = fid_of or PartitionFID(means)
    train, test = np.array(train, copy=True), np.array(test, copy=True)
    picker = _SwapPicker(settings.history)
    steps = []
    for s in range(settings.steps):
        before = fid_of(train, test)
        steps.append(_step("removal", f"R{s * settings.swaps_per_step}", before, names, train, test))
        pairs = picker.pick_step(means, train, test, settings.swaps_per_step, harder=True)
        _swap(train, test, pairs)
        if fid_of(train, test) >= before:
            _swap(train, test, pairs[::-1])
            removed_train, removed_test = sorted({i for i, _ in pairs}), sorted({j for _, j in pairs})
            train, test = np.delete(train, removed_train), np.delete(test, removed_test)
            # The history is deliberately left as it is: like the reference, it holds list positions and
            # is neither renumbered nor pruned after a deletion, so for the next H picks it excludes
            # whichever classes have moved into those positions (and positions past the end exclude
            # nothing). Renumbering would follow the removed classes' neighbours instead and pick other
            # classes from the first removal on (DESIGN.md section 3).
        if min(len(train), len(test)) < settings.swaps_per_step + max(settings.history, 2):
            # Another step could leave a side with fewer than 2 classes (FID undefined) or run out of
            # candidates outside the swap history.
            break
    return steps


def build_progressions(
    means: np.ndarray,
    names: Sequence[str],
    initial_train: Sequence[str],
    initial_test: Sequence[str],
    config: ProgressionConfig = ProgressionConfig(),
) -> dict[str, list[SplitStep]]:
    """All three progressions from class means (rows aligned with ``names``) and an initial partition."""
    names = list(names)
    if len(names) != len(means):
        raise ValueError(f"{len(names)} class names but {len(means)} class-mean vectors")
    index = {n: i for i, n in enumerate(names)}
    unknown = [c for c in (*initial_train, *initial_test) if c not in index]
    if unknown:
        raise ValueError(f"initial partition names classes without features: {unknown[:5]}")
    if set(initial_train) & set(initial_test):
        raise ValueError("initial train and test partitions overlap")
    train = np.array([index[c] for c in initial_train])
    test = np.array([index[c] for c in initial_test])
    means = np.asarray(means, dtype=np.float64)
    fid_of = PartitionFID(means)
    # The Gram route works on matrices of at most C x C: one BLAS thread is fastest there, and threads
    # spinning against a busy second core made it 4x slower (measured). Large routes keep all threads.
    with threadpool_limits(limits=1 if len(means) <= means.shape[1] else None, user_api="blas"):
        harder, end_train, end_test = swap_progression(means, names, train, test, config.harder, True, fid_of)
        easier, _, _ = swap_progression(means, names, train, test, config.easier, False, fid_of)
        removal = removal_progression(means, names, end_train, end_test, config.removal, fid_of)
    return {"harder": harder, "easier": easier, "removal": removal}
