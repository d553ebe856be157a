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

from tasks.splits.progressions import (
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


def _assert_same_steps(got, expected, names):
    assert [s.key for s in got] == [f"R{key}" for key, *_ in expected]
    for step, (_, fid, train, test) in zip(got, expected, strict=True):
        assert list(step.train) == train and list(step.test) == test, step.key
        assert step.fid == pytest.approx(fid, rel=1e-6), step.key


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
    _assert_same_steps(got, expected, names)


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
    _assert_same_steps(result["removal"], expected, names)
