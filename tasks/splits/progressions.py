"""The ooDML split progressions (docs/protocol.md section 2; Milbich, Roth et al., NeurIPS 2021).

Starting from a dataset's default train/test class partition, a progression moves classes between the
two sides step by step so that the FID between train and test class means grows (``harder``), shrinks
(``easier``), or grows beyond what swapping reaches by removing classes (``removal``). Every step
records its partition and FID before changing it; a split is identified by its progression and key
(the number of swaps done so far, negative for the easier direction, prefixed ``R`` for removal).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from threadpoolctl import threadpool_limits

from tasks.progress import Progress
from tasks.splits.fid import EPS, SubsetScatter, fid, fid_from_gram, fid_from_terms, fid_terms_from_scatter

# BLAS threads while building progressions (None: the library's default). One: the Gram route works on
# matrices of at most C x C, where threads spinning against a busy second core made it 4x slower; on the
# scatter route (SOP size) a busy 2-core box (load average 4.5-6) ran the 20-step harder progression in
# 48 s on one thread against 80-143 s on two, whose barriers wait for preempted threads
# (benchmarks/bench_fid.py --sop). On an idle box two threads could only speed up the BLAS-3 share of
# a step (Cholesky, L^T Q L, scatter updates); the eigenvalue problem runs on one thread
# anyway (fid.EIGEN_THREADS).
BLAS_THREADS: int | None = 1
# Worker processes that compute the cross terms of a swap progression's FIDs (Cholesky, L^T Q L,
# eigenvalues) beside the process that picks the swaps and updates the scatter matrices, so a
# 2-core box runs both at once. Processes, not threads: scipy's BLAS/LAPACK wrappers hold the GIL for the
# whole call (a second thread stalled 137 ms through a dsyrk and 337 ms through a dsyevr at d = 1500).
# Forked (Linux only: macOS's system libraries are not safe to use after a fork, and Windows has none).
# 0: every FID in this process, as successive calls.
FID_WORKERS = 1 if sys.platform.startswith("linux") else 0


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
    """FID of partitions of one fixed set of class means, paying for d-dimensional products once.

    With at most d classes it works on their Gram matrix (``fid_from_gram``). With more, it keeps the
    sum and scatter matrix of the train side and of the union of both sides (``SubsetScatter``, on the
    means centred at their overall mean) and updates them by the classes that moved since the previous
    call: a progression step of K swaps costs a rank-2K update, and the test side is the union minus
    the train side. Every call gives the FID of the partition it is given; successive calls only share
    work.
    """

    def __init__(self, means: np.ndarray, eps: float = EPS):
        self.means = np.asarray(means, dtype=np.float64)
        self.eps = eps
        self._gram = None
        self._train: SubsetScatter | None = None
        self._union: SubsetScatter | None = None
        centred = self.means - self.means.mean(axis=0)
        if self.means.shape[0] <= self.means.shape[1]:
            self._gram = centred @ centred.T
        else:
            self._centred = centred

    def __call__(self, train: np.ndarray, test: np.ndarray) -> float:
        prepared = self._prepared(train, test)
        return prepared if isinstance(prepared, float) else fid_from_terms(*prepared)

    def _prepared(self, train: np.ndarray, test: np.ndarray) -> float | tuple[float, np.ndarray, np.ndarray]:
        """The FID of this partition, or on the scatter route its terms and the two matrices of its cross
        term (``fid_terms_from_scatter``) after moving the tracked subsets to it."""
        if self._gram is not None:
            return fid_from_gram(self._gram, train, test, self.means.shape[1], self.eps)
        in_train = np.zeros(len(self.means), dtype=bool)
        in_train[train] = True
        in_union = in_train.copy()
        in_union[test] = True
        n_train, n_union = int(in_train.sum()), int(in_union.sum())
        if n_train != len(train) or n_union != len(train) + len(test):
            # repeated or shared classes: not a partition of distinct classes, so no subset to track
            return fid(self.means[train], self.means[test], self.eps)
        if self._train is None or self._union is None:
            self._train = SubsetScatter(self._centred, in_train)
            self._union = SubsetScatter(self._centred, in_union)
        else:
            self._train.move_to(in_train)
            self._union.move_to(in_union)
        a, u = self._train, self._union
        return fid_terms_from_scatter(
            a.total, a.scatter, a.count, u.total - a.total, u.scatter - a.scatter, u.count - a.count, self.eps
        )

    @contextmanager
    def pipeline(self) -> Iterator[Callable[[np.ndarray, np.ndarray], Future]]:
        """A ``submit(train, test)`` whose futures give, partition by partition, the values successive
        calls would (bit for bit: the same updates in the same order, the same single-threaded BLAS).

        On the scatter route the cross terms go to ``FID_WORKERS`` forked worker processes while at most
        two per worker wait; past that, or without workers, this process computes them itself, so both
        keep busy while the caller picks the next partition. The workers stop when the block ends.
        """
        if self._gram is not None or FID_WORKERS < 1:
            yield self._computed
            return
        waiting: list[Future] = []
        with ProcessPoolExecutor(FID_WORKERS, mp_context=get_context("fork")) as workers:

            def submit(train: np.ndarray, test: np.ndarray) -> Future:
                prepared = self._prepared(train, test)
                waiting[:] = [f for f in waiting if not f.done()]
                if isinstance(prepared, float) or len(waiting) >= 2 * FID_WORKERS:
                    return _done(prepared if isinstance(prepared, float) else fid_from_terms(*prepared))
                waiting.append(workers.submit(fid_from_terms, *prepared))
                return waiting[-1]

            yield submit

    def _computed(self, train: np.ndarray, test: np.ndarray) -> Future:
        return _done(self(train, test))


def _done(value: float) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


# Rows per block when scoring: a block and its scratch stay in cache (timed at SOP size, 22,634 x 2048).
_SCORE_BLOCK = 128


def _gather(means: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.take(means, rows, axis=0, out=out[: len(rows)])


def _sequential_mean(means: np.ndarray, rows: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """``means[rows].mean(axis=0)``, bit for bit, without gathering all rows.

    numpy reduces a C-ordered (n, d) array over axis 0 row after row, so the block-wise sum that carries
    its running total in the buffer's first row adds in the same order.
    """
    total = np.zeros(means.shape[1])
    first = True
    for start in range(0, len(rows), _SCORE_BLOCK):
        block = rows[start : start + _SCORE_BLOCK]
        if first:
            total = np.add.reduce(_gather(means, block, buffer), axis=0)
            first = False
        else:
            buffer[0] = total
            _gather(means, block, buffer[1:])
            total = np.add.reduce(buffer[: len(block) + 1], axis=0)
    return total / len(rows)


def _distance_difference(
    means: np.ndarray, rows: np.ndarray, far: np.ndarray, near: np.ndarray, buffer: np.ndarray
) -> np.ndarray:
    """``norm(X - far, axis=1) - norm(X - near, axis=1)`` for X = means[rows], bit for bit, block-wise.

    ``np.linalg.norm`` of a real array over axis 1 is ``sqrt(add.reduce(x * x, axis=1))``.
    """
    to_far, to_near = np.empty(len(rows)), np.empty(len(rows))
    diff = np.empty((_SCORE_BLOCK, means.shape[1]))
    for start in range(0, len(rows), _SCORE_BLOCK):
        block = _gather(means, rows[start : start + _SCORE_BLOCK], buffer)
        part = diff[: len(block)]
        for centre, out in ((far, to_far), (near, to_near)):
            np.subtract(block, centre, out=part)
            np.multiply(part, part, out=part)
            np.add.reduce(part, axis=1, out=out[start : start + len(block)])
    return np.sqrt(to_far, out=to_far) - np.sqrt(to_near, out=to_near)


def shift_scores(means: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position scores: |T_i - mS| - |T_i - mT| for train, |S_j - mT| - |S_j - mS| for test.

    Bit for bit the literal expressions on the gathered vectors (``mean(axis=0)`` in list order,
    ``np.linalg.norm``), so the sort orders and swap picks are theirs; computed a block of rows at a time
    in buffers that stay in cache instead of materializing the gathered sides and their differences.
    """
    means = np.ascontiguousarray(means, dtype=np.float64)
    buffer = np.empty((_SCORE_BLOCK + 1, means.shape[1]))
    mean_t, mean_s = _sequential_mean(means, train, buffer), _sequential_mean(means, test, buffer)
    train_scores = _distance_difference(means, train, mean_s, mean_t, buffer)
    test_scores = _distance_difference(means, test, mean_t, mean_s, buffer)
    return train_scores, test_scores


class _SwapPicker:
    """Walks sorted score lists to pick swap positions, skipping the last H positions chosen per side.

    The last H positions of each side are kept as counts per position, so a pick looks at a numpy
    slice of the sorted list for its first position not among them instead of walking it in Python.
    """

    def __init__(self, history: int):
        self.history = history
        self.train_chosen: list[int] = []
        self.test_chosen: list[int] = []
        self._recent: dict[str, np.ndarray] = {}

    def _first_free(self, side: str, chosen: list[int], order: np.ndarray, k: int) -> int | None:
        recent = self._recent_counts(side, chosen, len(order))
        # The last H picks hold at most H positions, so the first free one is within H + 1 of position k.
        window = order[k : k + self.history + 1]
        free = np.flatnonzero(recent[window] == 0)
        return int(window[free[0]]) if len(free) else None

    def _recent_counts(self, side: str, chosen: list[int], size: int) -> np.ndarray:
        counts = self._recent.get(side)
        if counts is None or len(counts) < size:
            counts = np.zeros(max(size, 1), dtype=np.int64)
            for position in chosen[-self.history :] if self.history else []:
                if position < len(counts):
                    counts[position] += 1
            self._recent[side] = counts
        return counts

    def _remember(self, side: str, chosen: list[int], position: int) -> None:
        chosen.append(position)
        if not self.history:
            return
        counts = self._recent[side]
        if position < len(counts):
            counts[position] += 1
        if len(chosen) > self.history:
            leaving = chosen[-self.history - 1]
            if leaving < len(counts):
                counts[leaving] -= 1

    def pick(self, train_order: np.ndarray, test_order: np.ndarray, k: int) -> tuple[int, int]:
        """The k-th swap of a step: walk both lists side by side from position k.

        The walk stops once both sides have a candidate, and each side's candidate is its first position
        from k on that is not among its last H picks, so the two are found independently.
        """
        found_train = self._first_free("train", self.train_chosen, train_order, k)
        found_test = self._first_free("test", self.test_chosen, test_order, k)
        if found_train is None or found_test is None:
            raise ValueError(
                f"no swap candidate left (history {self.history} too long for {len(train_order)} train / "
                f"{len(test_order)} test classes): lower the history or the swaps per step"
            )
        self._remember("train", self.train_chosen, found_train)
        self._remember("test", self.test_chosen, found_test)
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
    progress: Progress | None = None,
) -> tuple[list[SplitStep], np.ndarray, np.ndarray]:
    """The harder (ascending scores) or easier (descending) progression.

    Returns the recorded steps and the final partition, i.e. the state after the swaps of the last
    step, one step beyond the last recorded split.
    """
    fid_of = fid_of or PartitionFID(means)
    train, test = np.array(train, copy=True), np.array(test, copy=True)
    picker = _SwapPicker(settings.history)
    name, sign = ("harder", 1) if harder else ("easier", -1)
    recorded = []
    with fid_of.pipeline() as submit:  # the picks do not depend on the FIDs: the two run side by side
        for s in range(settings.steps):
            recorded.append(
                (str(sign * s * settings.swaps_per_step), submit(train, test), train.copy(), test.copy())
            )
            _swap(train, test, picker.pick_step(means, train, test, settings.swaps_per_step, harder))
            if progress is not None:
                progress.update()
        steps = [_step(name, key, value.result(), names, tr, te) for key, value, tr, te in recorded]
    return steps, train, test


def removal_progression(
    means: np.ndarray,
    names: Sequence[str],
    train: np.ndarray,
    test: np.ndarray,
    settings: ProgressionSettings,
    fid_of: PartitionFID | None = None,
    progress: Progress | None = None,
) -> list[SplitStep]:
    """Class removal, from the state the harder progression ends in, with a fresh swap history.

    Each step records its partition, picks K pairs as the harder direction does and swaps them. As
    docs/protocol.md section 2 specifies (following the ooDML reference,
    ``split_maker_with_class_removal``), when the FID after the swaps is greater than or equal to the FID
    before them, the swaps are undone and the picked classes are removed from their sides instead. The
    swap history keeps the list positions it picked across removals, unrenumbered, as the reference's
    does.
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
            # classes from the first removal on (docs/protocol.md section 2).
        if progress is not None:
            progress.update()
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
    progress: bool = False,
) -> dict[str, list[SplitStep]]:
    """All three progressions from class means (rows aligned with ``names``) and an initial partition;
    ``progress``: show their steps as they run (``tasks.progress``)."""
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
    total = config.harder.steps + config.easier.steps + config.removal.steps
    with (
        threadpool_limits(limits=BLAS_THREADS, user_api="blas"),
        Progress(total, "split progressions", quiet=not progress) as shown,
    ):
        harder, end_train, end_test = swap_progression(
            means, names, train, test, config.harder, True, fid_of, shown
        )
        easier, _, _ = swap_progression(means, names, train, test, config.easier, False, fid_of, shown)
        removal = removal_progression(means, names, end_train, end_test, config.removal, fid_of, shown)
    return {"harder": harder, "easier": easier, "removal": removal}
