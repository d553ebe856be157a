"""Progression defaults: the published settings exactly for the paper datasets, scaled for the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.data import build_dataset
from tasks.splits import features
from tasks.splits.build import build_from_dataset, build_split_file
from tasks.splits.features import ClassFeatures
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings, build_progressions
from tasks.splits.settings import (
    MAX_HISTORY_FRACTION,
    MAX_SWAP_FRACTION,
    PUBLISHED_SETTINGS,
    default_settings,
    progression_config,
)

CUB = ProgressionConfig(
    harder=ProgressionSettings(steps=25, swaps_per_step=2, history=5),
    easier=ProgressionSettings(steps=15, swaps_per_step=2, history=30),
    removal=ProgressionSettings(steps=35, swaps_per_step=2, history=5),
)
SOP = ProgressionConfig(
    harder=ProgressionSettings(steps=20, swaps_per_step=1000, history=1000),
    easier=ProgressionSettings(steps=5, swaps_per_step=1000, history=1000),
    removal=ProgressionSettings(steps=5, swaps_per_step=1000, history=1000),
)


def _means(sides: tuple[int, int], dim: int = 12, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    names = [f"c{i:03d}" for i in range(sum(sides))]
    return names, rng.normal(size=(len(names), dim)) + np.linspace(0, 3, len(names))[:, None]


def test_published_settings_are_unchanged_whatever_the_class_count() -> None:
    assert PUBLISHED_SETTINGS == {"cub200": CUB, "cars196": CUB, "sop": SOP}
    for dataset, published in PUBLISHED_SETTINGS.items():
        assert default_settings(dataset) == published
        for sides in [(100, 100), (98, 98), (11318, 11316), (20, 20)]:
            assert default_settings(dataset, sides) == published
            assert progression_config(dataset, sides=sides) == published
    assert progression_config("cars196", sides=(98, 98), history=3).harder.history == 3


@pytest.mark.parametrize("dataset", ["imagefolder", "csv", "glyphs", None])
def test_a_cub_sized_dataset_gets_cubs_settings_unchanged(dataset: str | None) -> None:
    assert default_settings(dataset, (100, 100)) == CUB
    assert default_settings(dataset, (150, 100)) == CUB
    assert default_settings(dataset) == CUB  # no class counts: as before


def test_twenty_plus_twenty_classes_build_with_defaults_where_cubs_settings_fail() -> None:
    names, means = _means((20, 20))
    train, test = names[:20], names[20:]
    with pytest.raises(ValueError, match="history 30 too long for 20 train / 20 test classes"):
        build_progressions(means, names, train, test, CUB)
    config = progression_config("imagefolder", sides=(20, 20))
    assert config.easier.history == 6 and config.harder.history == 5 and config.harder.swaps_per_step == 2
    assert config.removal.steps == 7  # (20 - 2 - 5) // 2 + 1: removing 2 a step keeps >= 7 classes a side
    built = build_split_file(names, means, train, test, config=config)
    assert len(built.progressions["easier"]) == 15 and len(built.progressions["harder"]) == 25
    assert len(built.splits) == 8


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 10, 16, 20, 33, 64, 99])
def test_the_scaling_rule_bounds_and_always_builds(n: int) -> None:
    sides = (n, n + 3)
    config = default_settings("csv", sides)
    for settings in (config.harder, config.easier, config.removal):
        assert 1 <= settings.swaps_per_step <= max(1, MAX_SWAP_FRACTION * n)
        assert settings.history <= MAX_HISTORY_FRACTION * n
        assert settings.history + settings.swaps_per_step <= n
        assert settings.swaps_per_step == config.harder.swaps_per_step
    for name in ("harder", "easier", "removal"):  # never more than CUB's
        scaled, cub = getattr(config, name), getattr(CUB, name)
        assert scaled.steps <= cub.steps and scaled.history <= cub.history
    names, means = _means(sides, seed=n)
    progressions = build_progressions(means, names, names[:n], names[n:], config)
    assert progressions["removal"] and all(
        len(s.train) >= 2 and len(s.test) >= 2 for steps in progressions.values() for s in steps
    )


def test_given_settings_are_kept_and_the_rest_scaled() -> None:
    config = progression_config(
        "imagefolder", sides=(20, 20), easier_history=10, swaps_per_step=3, removal_steps=9
    )
    assert config.easier.history == 10 and config.removal.steps == 9
    assert config.harder.swaps_per_step == config.easier.swaps_per_step == 3
    assert config.harder.history == 5 and config.harder.steps == 25
    with pytest.raises(ValueError, match="at least 2 on each side"):
        progression_config("imagefolder", sides=(1, 30))


def test_a_twenty_plus_twenty_csv_dataset_builds_its_splits_with_defaults(
    tmp_path: Path, monkeypatch
) -> None:
    """Through ``build_from_dataset`` with the features stubbed by class means (no extractor weights)."""
    rows = ["path,label,side"]
    for c in range(40):
        for k in range(3):
            Image.new("RGB", (8, 8), (c * 6, k * 40, 90)).save(tmp_path / f"{c}_{k}.png")
            rows.append(f"{c}_{k}.png,class{c:02d},{'train' if c % 2 else 'test'}")
    (tmp_path / "birds.csv").write_text("\n".join(rows) + "\n")
    images = build_dataset("csv", tmp_path / "birds.csv", name="birds")
    assert len(images.default_train) == len(images.default_test) == 20

    names, means = _means((20, 20))
    stub = ClassFeatures.from_means(sorted(images.classes), means, "stub")
    monkeypatch.setattr(features, "class_mean_features", lambda *args, **kwargs: stub)
    built = build_from_dataset("csv", images, tmp_path / "splits", shots=[2], episodes=2)
    assert built.provenance["dataset"] == "birds"
    assert built.provenance["progression_settings"]["easier"]["history"] == 6
    assert len(built.splits) == 8 and all(s.episodes[2] for s in built.splits)
