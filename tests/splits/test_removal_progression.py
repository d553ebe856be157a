"""The class-removal progression against a literal transcription of the ooDML reference's loop.

The reference is ``split_helpers.split_maker_with_class_removal`` (CompVis/Characterizing_Generalization_in_DML
at 0c70f0e), transcribed below by reading it: lists of per-class vectors and names that are swapped,
copied back and deleted in place, a swap history of list positions that is never renumbered, ``np.argsort``
of the scores, ``zip`` walks and the scipy ``sqrtm`` FID. DESIGN.md section 3 says oodml reproduces it.
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


def _original_removal(train_feats, train_cls, test_feats, test_cls, n_swaps, swaps_per_iter, history):
    """Transcription of the reference's removal loop; returns [(key, fid, train names, test names)]."""
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
    names of that state (the reference takes the names of the last recorded split instead; DESIGN.md 3)."""
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
