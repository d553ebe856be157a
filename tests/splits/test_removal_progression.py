"""The class-removal progression against a literal transcription of the ooDML reference's loop.

The reference is ``split_helpers.split_maker_with_class_removal`` (CompVis/Characterizing_Generalization_in_DML
at 0c70f0e), transcribed below by reading it: lists of per-class vectors and names that are swapped,
copied back and deleted in place, a swap history of list positions that is never renumbered, ``np.argsort``
of the scores, ``zip`` walks and the scipy ``sqrtm`` FID. docs/protocol.md section 2 says oodml reproduces it.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import linalg

from tasks.splits.fid import fid
from tasks.splits.progressions import (
    PartitionFID,
    ProgressionConfig,
    ProgressionSettings,
    build_progressions,
    removal_progression,
    swap_progression,
)
from tasks.splits.settings import scaled_settings


def _sqrtm_fid(train_feats: np.ndarray, test_feats: np.ndarray, eps: float = 1e-8) -> float:
    mu_tr, cov_tr = train_feats.mean(axis=0), np.cov(train_feats, rowvar=False)
    mu_ts, cov_ts = test_feats.mean(axis=0), np.cov(test_feats, rowvar=False)
    diff = mu_tr - mu_ts
    offset = np.eye(len(cov_ts)) * eps
    covmean = linalg.sqrtm((cov_tr + offset) @ (cov_ts + offset)).real
    return float(diff @ diff + np.trace(cov_tr) + np.trace(cov_ts) - 2 * np.trace(covmean))


def _original_walk(train_swaps, test_swaps, k, train_history, test_history, history):
    """The k-th swap of a step, as the reference walks its two sorted lists (``zip``: to the shorter's end)."""
    train_swap = test_swap = None
    for train_candidate, test_candidate in zip(train_swaps[k:], test_swaps[k:], strict=False):
        if train_candidate not in train_history[-history:] and train_swap is None:
            train_history.append(train_candidate)
            train_swap = train_candidate
        if test_candidate not in test_history[-history:] and test_swap is None:
            test_history.append(test_candidate)
            test_swap = test_candidate
        if train_swap is not None and test_swap is not None:
            break
    return train_swap, test_swap


def _original_removal(
    train_feats, train_cls, test_feats, test_cls, n_swaps, swaps_per_iter, history, stop_below=None
):
    """Transcription of the reference's removal loop; returns [(key, fid, train names, test names)].

    ``stop_below``: also stop after a step that leaves the smaller side with fewer classes (oodml's stop
    rule, not the reference's, which runs its N steps)."""
    train_feats, test_feats = list(train_feats), list(test_feats)
    train_cls, test_cls = list(train_cls), list(test_cls)
    train_history, test_history = [], []  # list positions, exactly as picked
    recorded = []
    for i in range(n_swaps):
        fid = _sqrtm_fid(np.stack(train_feats), np.stack(test_feats))
        recorded.append((i * swaps_per_iter, fid, copy.deepcopy(train_cls), copy.deepcopy(test_cls)))
        train_mean, test_mean = np.mean(train_feats, axis=0), np.mean(test_feats, axis=0)
        train_scores = [np.linalg.norm(t - test_mean) - np.linalg.norm(t - train_mean) for t in train_feats]
        test_scores = [np.linalg.norm(s - train_mean) - np.linalg.norm(s - test_mean) for s in test_feats]
        old_train_feats, old_test_feats = copy.deepcopy(train_feats), copy.deepcopy(test_feats)
        old_train_cls, old_test_cls = copy.deepcopy(train_cls), copy.deepcopy(test_cls)
        train_swaps, test_swaps = np.argsort(train_scores), np.argsort(test_scores)
        train_picked, test_picked = [], []
        for k in range(swaps_per_iter):
            t, s = _original_walk(train_swaps, test_swaps, k, train_history, test_history, history)
            train_picked.append(t)
            test_picked.append(s)
            train_feats[t], test_feats[s] = test_feats[s], train_feats[t]
            train_cls[t], test_cls[s] = test_cls[s], train_cls[t]
        if _sqrtm_fid(np.stack(train_feats), np.stack(test_feats)) >= fid:
            train_feats, test_feats = old_train_feats, old_test_feats
            train_cls, test_cls = old_train_cls, old_test_cls
            # Delete from the back so that earlier positions stay valid; the histories are left alone.
            for position in sorted(set(train_picked), reverse=True):
                del train_feats[position]
                del train_cls[position]
            for position in sorted(set(test_picked), reverse=True):
                del test_feats[position]
                del test_cls[position]
        if stop_below is not None and min(len(train_cls), len(test_cls)) < stop_below:
            break
    return recorded


def _synthetic(seed: int, classes: int = 200, dim: int = 16):
    rng = np.random.default_rng(seed)
    # correlated, non-negative class means like pooled CNN features
    means = np.abs(rng.normal(size=(classes, dim)) + rng.normal(size=(classes, 1)))
    names = [f"c{i:03d}" for i in range(classes)]
    order = rng.permutation(classes)
    return means, names, order[: classes // 2], order[classes // 2 :]


def _assert_same_steps(got, expected):
    assert [s.key for s in got] == [f"R{key}" for key, *_ in expected]
    for step, (_, value, train, test) in zip(got, expected, strict=True):
        assert list(step.train) == train and list(step.test) == test, step.key
        assert step.fid == pytest.approx(value, rel=1e-6), step.key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_removal_equals_the_original_loop(seed):
    means, names, train, test = _synthetic(seed)
    settings = ProgressionSettings(steps=35, swaps_per_step=2, history=5)  # the published CUB setting
    got = removal_progression(means, names, train, test, settings)
    expected = _original_removal(
        [means[c] for c in train], [names[c] for c in train], [means[c] for c in test],
        [names[c] for c in test], settings.steps, settings.swaps_per_step, settings.history,
    )  # fmt: skip
    assert len(got[-1].train) < len(got[0].train)  # removals happened, so the history quirk is exercised
    _assert_same_steps(got, expected)


def test_removal_from_the_harder_end_equals_the_original_loop():
    """As build_progressions runs it: from the state after the harder walk's final swaps, with the class
    names of that state (the reference takes the names of the last recorded split instead; docs/protocol.md section 2)."""
    means, names, train, test = _synthetic(7)
    config = ProgressionConfig()
    result = build_progressions(means, names, [names[c] for c in train], [names[c] for c in test], config)
    _, end_train, end_test = swap_progression(means, names, train, test, config.harder, harder=True)
    expected = _original_removal(
        [means[c] for c in end_train], [names[c] for c in end_train], [means[c] for c in end_test],
        [names[c] for c in end_test], config.removal.steps, config.removal.swaps_per_step,
        config.removal.history,
    )  # fmt: skip
    _assert_same_steps(result["removal"], expected)


def test_a_swap_that_leaves_the_fid_unchanged_removes_the_classes():
    """The stop rule at its boundary: FID after == FID before counts as not lower (``>=``), so the swap is
    undone and the two classes are removed. Here a train and a test class share one mean vector halfway
    between the side means; both score 0, the lowest of their sides, so the walk swaps them, and the
    swapped partition is the same set of vectors: its FID is exactly the FID before."""
    train_side = np.array([[-1.0, 1.0], [-1.0, -1.0], [-2.0, 0.0], [-3.0, 1.0], [-1.5, -2.0], [0.0, 0.5]])
    test_side = train_side * [-1.0, 1.0]  # mirrored, so both side means are equidistant from x = 0
    means = np.concatenate([train_side, test_side])
    names = [f"t{i}" for i in range(6)] + [f"s{i}" for i in range(6)]
    train, test = np.arange(6), np.arange(6, 12)
    swapped_train, swapped_test = train.copy(), test.copy()
    swapped_train[5], swapped_test[5] = test[5], train[5]
    assert PartitionFID(means)(swapped_train, swapped_test) == PartitionFID(means)(train, test)

    steps = removal_progression(means, names, train, test, ProgressionSettings(2, 1, 1))
    assert [s.key for s in steps] == ["R0", "R1"]
    assert steps[1].train == ("t0", "t1", "t2", "t3", "t4") and steps[1].test == (
        "s0",
        "s1",
        "s2",
        "s3",
        "s4",
    )
    assert steps[1].fid == pytest.approx(fid(means[:5], means[6:11]), rel=1e-12)


@pytest.mark.parametrize("seed", [3, 4])
def test_swaps_are_kept_only_when_they_lower_the_fid(seed):
    """The rule's direction on a generic run: between two recorded steps, either the sides kept their sizes
    and the FID fell, or K classes left each side and swapping them instead would not have lowered it."""
    means, names, train, test = _synthetic(seed, classes=60, dim=8)
    k = 2
    steps = removal_progression(means, names, train, test, ProgressionSettings(30, k, 3))
    index = {n: i for i, n in enumerate(names)}
    kept = removed = 0
    for before, after in zip(steps, steps[1:], strict=False):
        if len(after.train) == len(before.train):
            kept += 1
            assert len(after.test) == len(before.test) and after.fid < before.fid
            continue
        removed += 1
        gone_train = set(before.train) - set(after.train)
        gone_test = set(before.test) - set(after.test)
        assert len(gone_train) == len(gone_test) == k
        # FID depends on the sets only, so the swapped partition's FID needs no pairing of the picks
        swapped_train = [index[c] for c in (set(before.train) - gone_train) | gone_test]
        swapped_test = [index[c] for c in (set(before.test) - gone_test) | gone_train]
        assert fid(means[swapped_train], means[swapped_test]) >= before.fid
    assert kept and removed  # both branches of the rule were taken


# The stop rule (removal_progression's loop; settings.py's docstring): after a step, the walk stops when
# the smaller side holds fewer than K + max(H, 2) classes; a step that leaves exactly K + max(H, 2) is
# followed by another. With every class mean the same vector (all ones: centred exactly 0), a swap never
# changes the FID, so by the >= rule every step removes K classes from each side, and the sizes of each
# recorded step follow by hand: a side of n classes holds n - s K at step s.
@pytest.mark.parametrize(
    ("sides", "k", "history", "expected_sizes"),
    [
        # bound 2 + max(1, 2) = 4; after-step smaller side 10, 8, 6, 4 (= bound: go on), 2 (< 4: stop)
        ((12, 13), 2, 1, [(12, 13), (10, 11), (8, 9), (6, 7), (4, 5)]),
        # H = 0 still keeps 2: bound 2 + 2 = 4, as above (a bound of K + H = 2 would go on to 2 classes)
        ((12, 13), 2, 0, [(12, 13), (10, 11), (8, 9), (6, 7), (4, 5)]),
        # bound 1 + 3 = 4; one class a step: 12 .. 4 recorded, stop once 3 are left
        ((12, 13), 1, 3, [(12 - s, 13 - s) for s in range(9)]),
        # bound 3 + max(3, 2) = 6: after-step 9, 6 (= bound: go on), 3 (< 6: stop)
        ((12, 13), 3, 3, [(12, 13), (9, 10), (6, 7)]),
        # the smaller side decides, whichever it is: the test side of 12 here (the train side of 20 would
        # allow 9 steps)
        ((20, 12), 2, 1, [(20, 12), (18, 10), (16, 8), (14, 6), (12, 4)]),
        ((12, 20), 2, 1, [(12, 20), (10, 18), (8, 16), (6, 14), (4, 12)]),
    ],
)
def test_the_removal_walk_stops_below_k_plus_max_h_2_and_not_at_it(sides, k, history, expected_sizes):
    n_train, n_test = sides
    means = np.ones((n_train + n_test, 3))
    names = [f"c{i:02d}" for i in range(len(means))]
    train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    steps = removal_progression(means, names, train, test, ProgressionSettings(30, k, history))
    assert [(len(s.train), len(s.test)) for s in steps] == expected_sizes
    assert [s.key for s in steps] == [f"R{s * k}" for s in range(len(expected_sizes))]
    assert min(expected_sizes[-1]) - k < k + max(history, 2) <= min(expected_sizes[-1])


def test_the_removal_walk_runs_its_steps_when_the_stop_is_not_reached():
    """N steps and no more when the sides stay above the bound: 12 - 3 * 2 = 6 >= 4 after the last."""
    means = np.ones((25, 3))
    names = [f"c{i:02d}" for i in range(25)]
    steps = removal_progression(means, names, np.arange(12), np.arange(12, 25), ProgressionSettings(4, 2, 1))
    assert [(len(s.train), len(s.test)) for s in steps] == [(12, 13), (10, 11), (8, 9), (6, 7)]


def test_the_removal_walk_stops_at_the_boundary_as_the_original_loop_with_the_rule():
    """On a generic run (swaps kept and removals mixed) the steps are the original loop's, cut by the rule:
    after a step, stop when the smaller side holds fewer than K + max(H, 2) classes. The run reaches a step
    whose smaller side is exactly the bound and goes on from it."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(25, 30))
    names = [f"c{i:02d}" for i in range(25)]
    train, test = np.arange(12), np.arange(12, 25)
    k, history, n_steps = 2, 1, 30
    bound = k + max(history, 2)
    got = removal_progression(means, names, train, test, ProgressionSettings(n_steps, k, history))
    expected = _original_removal(
        [means[c] for c in train], [names[c] for c in train], [means[c] for c in test],
        [names[c] for c in test], n_steps, k, history, stop_below=bound,
    )  # fmt: skip
    _assert_same_steps(got, expected)
    sizes = [min(len(s.train), len(s.test)) for s in got]
    assert bound in sizes[1:] and len(got) < n_steps  # the boundary was reached, and the rule stopped it


def _steps_until_the_stop(n: int, k: int, history: int) -> int:
    """Recorded steps of a walk that removes K classes a side every step from a smaller side of n: a step
    follows another while that one left at least K + max(H, 2) classes."""
    count = 1
    while n - k >= k + max(history, 2):
        n, count = n - k, count + 1
    return count


@pytest.mark.parametrize("n", [4, 5, 6, 8, 9, 12, 20, 31])
def test_scaled_removal_steps_are_the_steps_a_walk_removing_every_step_runs(n):
    """settings.py: at most as many removal steps as can run before a side would fall below K + max(H, 2)
    if every step removed classes; all ones make every step remove (see above)."""
    config = scaled_settings(ProgressionConfig(), (n, n + 5))
    removal = config.removal
    expected = min(35, _steps_until_the_stop(n, removal.swaps_per_step, removal.history))
    assert removal.steps == expected
    means = np.ones((2 * n + 5, 3))
    names = [f"c{i:02d}" for i in range(len(means))]
    unbounded = ProgressionSettings(100, removal.swaps_per_step, removal.history)
    steps = removal_progression(means, names, np.arange(n), np.arange(n, 2 * n + 5), unbounded)
    assert len(steps) == _steps_until_the_stop(n, removal.swaps_per_step, removal.history)
