"""Kernel MMD between class sets (tasks/splits/shift.py) against slow references written from the
definition (Gretton et al. 2012, eq. 3)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tasks.splits.features as features
from tasks.data import build_dataset
from tasks.identity import split_hash
from tasks.splits.build import build_from_dataset, build_split_file, write_split_outputs
from tasks.splits.features import ClassFeatures
from tasks.splits.fid import fid
from tasks.splits.files import read_split_file
from tasks.splits.options import SplitOptions
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings
from tasks.splits.settings import overrides_of, progression_config
from tasks.splits.shift import median_heuristic, split_mmd2, splits_mmd2


def _pair(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """MMD^2_u between the rows of ``x`` and ``y`` through ``splits_mmd2`` (one split: x's rows against
    y's; default bandwidth: the median heuristic over the pooled rows)."""
    names = [f"p{i}" for i in range(len(x) + len(y))]
    values, _ = splits_mmd2(names, np.concatenate([x, y]), [(names[: len(x)], names[len(x) :])], bandwidth)
    return float(values[0])


def _kernel(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    return math.exp(-sum((a - b) ** 2 for a, b in zip(x, y, strict=True)) / (2 * sigma**2))


def _mmd2_loop(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    m, n = len(x), len(y)
    xx = sum(_kernel(x[i], x[j], sigma) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(_kernel(y[i], y[j], sigma) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(_kernel(x[i], y[j], sigma) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def _median_loop(points: np.ndarray) -> float:
    distances = [
        math.sqrt(sum((a - b) ** 2 for a, b in zip(points[i], points[j], strict=True)))
        for i in range(len(points))
        for j in range(i + 1, len(points))
    ]
    return float(np.median(distances))


def test_mmd_equals_the_double_loop_for_uneven_sides_and_small_blocks() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 5)) * 3 + 40, rng.normal(size=(14, 5)) * 3 + 41
    sigma = median_heuristic(np.concatenate([x, y]))
    assert sigma == pytest.approx(_median_loop(np.concatenate([x, y])), rel=1e-12)
    expected = _mmd2_loop(x, y, sigma)
    assert _pair(x, y) == pytest.approx(expected, rel=1e-10, abs=1e-13)
    points, train = np.concatenate([x, y]), np.arange(23) < 9
    for block in (1, 4, 7, 23, 100):  # diagonal and off-diagonal blocks, evened (7 on 23 rows: 6, 6, 6, 5)
        got = split_mmd2(points, train[None], ~train[None], sigma, block=block)[0]
        assert got == pytest.approx(expected, rel=1e-10, abs=1e-13)


def test_mmd_can_be_negative_for_one_distribution() -> None:
    rng = np.random.default_rng(3)
    values = []
    for _ in range(20):
        x, y = rng.normal(size=(6, 3)), rng.normal(size=(7, 3))
        got = _pair(x, y, bandwidth=1.5)
        assert got == pytest.approx(_mmd2_loop(x, y, 1.5), rel=1e-10, abs=1e-13)
        values.append(got)
    assert min(values) < 0  # unbiased: not a squared norm of an estimate


def test_mmd_is_symmetric_and_ignores_row_order() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(21, 8)) + 0.4
    value = _pair(x, y)
    assert _pair(y, x) == pytest.approx(value, rel=1e-12)
    assert _pair(x[::-1], rng.permutation(y)) == pytest.approx(value, rel=1e-12)


def test_mmd_is_near_zero_for_one_distribution_and_positive_for_shifted_ones() -> None:
    rng = np.random.default_rng(2)
    x, same = rng.normal(size=(200, 16)), rng.normal(size=(200, 16))
    shifted = rng.normal(size=(200, 16)) + 1.0
    null, shift = _pair(x, same), _pair(x, shifted)
    assert abs(null) < 0.01 < 0.1 < shift


def test_several_splits_in_one_pass_equal_each_measured_alone() -> None:
    rng = np.random.default_rng(4)
    names = [f"c{i}" for i in range(40)]
    means = rng.normal(size=(40, 6)) + np.linspace(0, 3, 40)[:, None]
    splits = [(names[:20], names[20:]), (names[::2], names[1::2]), (names[:15], names[30:])]  # last: removal
    values, sigma = splits_mmd2(names, means, splits)
    assert sigma == pytest.approx(_median_loop(means), rel=1e-12)
    for value, (train, test) in zip(values, splits, strict=True):
        rows = lambda classes: means[[names.index(c) for c in classes]]  # noqa: E731
        assert value == pytest.approx(_mmd2_loop(rows(train), rows(test), sigma), rel=1e-10, abs=1e-13)
    assert values[0] > values[1]  # the sorted halves are the more shifted partition


def test_one_shared_kernel_on_two_threads_equals_each_split_with_a_kernel_of_its_own() -> None:
    """The shared-kernel pass (blocks of 16 rows over all points, shared by two threads) against each
    split measured on its own points from its own full kernel matrices, in float64 to 1e-9 relative; the
    thread count does not change a bit."""
    rng = np.random.default_rng(11)
    points = rng.normal(size=(90, 8)) + np.linspace(0, 2, 90)[:, None]
    train, test = np.zeros((5, 90), bool), np.zeros((5, 90), bool)
    for s in range(5):
        order = rng.permutation(90)
        train[s, order[: 30 + 5 * s]], test[s, order[30 + 5 * s : 85]] = True, True  # 5 points removed
    sigma = median_heuristic(points)
    shared = split_mmd2(points, train, test, sigma, block=16, threads=2)
    assert np.array_equal(shared, split_mmd2(points, train, test, sigma, block=16, threads=1))

    def own_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))

    for value, t, u in zip(shared, train, test, strict=True):
        x, y = points[t], points[u]
        m, n = len(x), len(y)
        xx, yy = own_kernel(x, x), own_kernel(y, y)
        alone = (xx.sum() - np.trace(xx)) / (m * (m - 1)) + (yy.sum() - np.trace(yy)) / (n * (n - 1))
        alone -= 2 * own_kernel(x, y).mean()
        assert value == pytest.approx(alone, rel=1e-9)


def test_median_heuristic_subsamples_large_sets_with_a_seed() -> None:
    points = np.random.default_rng(5).normal(size=(60, 3))
    chosen = np.sort(np.random.default_rng(7).choice(60, 25, replace=False))
    assert median_heuristic(points, max_points=25, seed=7) == pytest.approx(
        _median_loop(points[chosen]), rel=1e-12
    )
    assert median_heuristic(points, max_points=60) == pytest.approx(_median_loop(points), rel=1e-12)


def test_refuses_what_the_estimator_cannot_measure() -> None:
    points = np.zeros((4, 2))
    with pytest.raises(ValueError, match="at least 2 points on each side"):
        split_mmd2(
            points, np.array([[True, False, False, False]]), np.array([[False, True, True, True]]), 1.0
        )
    with pytest.raises(ValueError, match="both sides"):
        split_mmd2(points, np.array([[True, True, True, False]]), np.array([[False, True, True, True]]), 1.0)
    with pytest.raises(ValueError, match="positive"):
        split_mmd2(
            points, np.array([[True, True, False, False]]), np.array([[False, False, True, True]]), 0.0
        )


SMALL = ProgressionConfig(
    harder=ProgressionSettings(steps=6, swaps_per_step=2, history=3),
    easier=ProgressionSettings(steps=3, swaps_per_step=2, history=3),
    removal=ProgressionSettings(steps=4, swaps_per_step=2, history=3),
)


def _means(count: int = 40, dim: int = 10, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"c{i:02d}" for i in range(count)], rng.normal(size=(count, dim)) + np.linspace(0, 2, count)[
        :, None
    ]


def test_every_built_split_stores_its_mmd_under_the_files_one_bandwidth(tmp_path: Path) -> None:
    names, means = _means()
    built = build_split_file(names, means, names[::2], names[1::2], config=SMALL, selection=5)
    sigma = built.provenance["shift"]["bandwidth"]
    assert sigma == pytest.approx(_median_loop(means), rel=1e-12)
    assert {s.progression for s in built.splits} >= {"harder", "removal"}
    rows = lambda classes: means[[names.index(c) for c in classes]]  # noqa: E731
    for split in built.splits:
        assert set(split.shift) == {"mmd"}
        expected = _mmd2_loop(rows(split.train), rows(split.test), sigma)
        assert split.shift["mmd"] == pytest.approx(expected, rel=1e-10, abs=1e-13)

    json_path, pkl_path = write_split_outputs(built, tmp_path)
    assert read_split_file(json_path) == built  # the JSON keeps the measures and the bandwidth
    assert all(s.shift is None for s in read_split_file(pkl_path).splits)  # the ooDML layout has no place
    older = json.loads(json_path.read_text())
    for split in older["splits"]:
        del split["shift"]
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert all(s.shift is None for s in read_split_file(tmp_path / "older.json").splits)
    # descriptive only: the measures leave the split's hash, hence trial ids, as they were
    split = built.splits[0]
    assert split_hash(split) == split_hash(split.model_copy(update={"shift": None}))


def test_a_second_extractor_stores_each_splits_fid_under_its_features(
    tiny_glyphs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``build_from_dataset`` with each extractor's class means stubbed (no weights needed)."""
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=24)
    by_extractor = {
        name: ClassFeatures.from_means(images.classes, _means(24, dim, seed)[1], name)
        for name, dim, seed in (("glyph-classifier", 10, 0), ("resnet50", 30, 1))
    }
    monkeypatch.setattr(features, "class_mean_features", lambda images, name, **_: by_extractor[name])
    options = SplitOptions(select=3, steps=3, easier_steps=2, removal_steps=2, shift_extractors="resnet50")
    built = build_from_dataset(
        "glyphs",
        images,
        tmp_path,
        config=progression_config("glyphs", sides=(12, 12), **overrides_of(options)),
        selection=options.select,
        episodes=2,
        shift_extractors=options.shift_extractors or (),
    )
    other = by_extractor["resnet50"]
    assert built.provenance["shift_feature_hashes"] == {"resnet50": other.feature_hash}
    for split in built.splits:
        assert set(split.shift) == {"mmd", "fid@resnet50"}
        rows = lambda classes: other.means[[images.classes.index(c) for c in classes]]  # noqa: E731
        assert split.shift["fid@resnet50"] == pytest.approx(fid(rows(split.train), rows(split.test)))
        assert split.shift["fid@resnet50"] != pytest.approx(split.fid)
    assert read_split_file(tmp_path / "splits.json") == built


def test_shift_extractors_are_registry_names() -> None:
    assert SplitOptions(shift_extractors="resnet50, glyph-classifier").shift_extractors == [
        "resnet50",
        "glyph-classifier",
    ]
    assert SplitOptions().shift_extractors is None
    with pytest.raises(ValueError, match="unknown name 'resnet5'; did you mean 'resnet50'"):
        SplitOptions(shift_extractors=["resnet5"])
