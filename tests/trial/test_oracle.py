"""The shift-vs-difficulty control on the trial side (docs/oracle.md): the held-out division of the test
classes, the oracle's training set, identities of the two roles, and oracle / held-out / cross-dataset
measurements of real trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from tasks.config import TrialConfig
from tasks.identity import cross_split_hashes, describe, split_hash, trial_identity
from tasks.oracle import divide_test_classes, oracle_training_set
from tasks.record import Measurement
from tasks.splits.files import read_split_file
from tasks.splits.heldout import MIN_HALF, heldout_division, kept_classes, training_size
from tasks.trial import run_trial
from tests.trial.configs import trial_config

ROOT = Path(__file__).resolve().parents[2]


def _classes(sizes: dict[str, int]) -> dict[str, list[str]]:
    return {c: [f"{c}/{k:02d}.png" for k in range(n)] for c, n in sizes.items()}


SIZES = {"a": 26, "b": 9, "c": 4, "d": 3, "e": 1, "f": 5, "g": 0}


@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.9, 0.05])
def test_halves_divide_each_kept_class_and_small_ones_are_counted(fraction: float) -> None:
    images = _classes(SIZES)
    division = heldout_division(images, list(SIZES), fraction, seed=3)
    assert division.left_out == ["d", "e", "g"]  # fewer than 2 + 2 images
    assert division.classes == ["a", "b", "c", "f"] == kept_classes(list(SIZES), SIZES)  # the study's count
    for name in division.classes:
        train, held = set(division.train[name]), set(division.heldout[name])
        assert not train & held and train | held == set(images[name])  # disjoint, the union is the class
        assert len(train) >= MIN_HALF and len(held) >= MIN_HALF  # every held-out query has a positive
        expected = min(max(int(np.floor(fraction * len(images[name]) + 0.5)), 2), len(images[name]) - 2)
        assert len(train) == expected == training_size(len(images[name]), fraction)


def test_halves_are_seeded_per_class() -> None:
    images = _classes(SIZES)
    first = heldout_division(images, list(SIZES), 0.5, seed=0)
    assert first == heldout_division(images, list(reversed(SIZES)), 0.5, seed=0)  # order does not matter
    alone = heldout_division(images, ["a"], 0.5, seed=0)  # a class divides the same way in every split
    assert alone.train["a"] == first.train["a"]
    other = heldout_division(images, list(SIZES), 0.5, seed=1)
    assert other.train["a"] != first.train["a"]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        heldout_division(images, ["a"], 1.0, seed=0)


def _config(bench, **changes) -> TrialConfig:
    short = {"training.epochs": 2, "training.iterations_per_epoch": 3, "fewshot.shots": []}
    return trial_config(bench, **short, **changes)


def test_the_oracle_trains_on_the_training_halves(glyph_benchmark) -> None:
    images = glyph_benchmark["images"]
    split = read_split_file(glyph_benchmark["split_file"]).split("0")
    config = _config(glyph_benchmark, heldout={"fraction": 0.5, "seed": 0})
    division = divide_test_classes(images, split, config.heldout)
    subset, oracle = oracle_training_set(images, split, division)
    assert set(subset.image_ids) == {i for ids in division.train.values() for i in ids}
    assert oracle.split_train == oracle.train == sorted(split.test) and not oracle.split_val
    role = _config(glyph_benchmark, heldout={"fraction": 0.5, "seed": 0}, role="oracle")
    assert describe(role, split).num_train_classes is None  # known once the division is made
    assert describe(config, split).num_train_classes == len(split.train)
    parent = {image_id: k for k, image_id in enumerate(images.image_ids)}
    for k in (0, len(subset) // 2, len(subset) - 1):  # the same pixels and label as in the dataset
        j = parent[subset.image_ids[k]]
        assert subset.labels[k] == images.labels[j]
        assert np.array_equal(np.asarray(subset.load(k)), np.asarray(images.load(j)))


def test_roles_and_settings_enter_the_trial_id(glyph_benchmark) -> None:
    plain = _config(glyph_benchmark)
    assert trial_identity(plain, "s") == trial_identity(_config(glyph_benchmark, role="benchmark"), "s")
    heldout = {"fraction": 0.5, "seed": 0}
    cross = _config(glyph_benchmark, evaluate_on=[plain.data.model_dump()])
    ids = {
        trial_identity(plain, "s"),
        trial_identity(_config(glyph_benchmark, heldout=heldout), "s"),
        trial_identity(_config(glyph_benchmark, heldout=heldout, role="oracle"), "s"),
        trial_identity(_config(glyph_benchmark, heldout=heldout | {"seed": 1}, role="oracle"), "s"),
        trial_identity(cross, "s", ["c"]),
        trial_identity(cross, "s", ["rebuilt"]),  # the other dataset's split file was rebuilt
    }
    assert len(ids) == 6
    with pytest.raises(ValueError, match="evaluated on 1 other datasets needs as many split hashes, got 0"):
        trial_identity(cross, "s")
    moved = plain.data.model_copy(update={"split_file": "/elsewhere/splits.json"})
    assert trial_identity(_config(glyph_benchmark, evaluate_on=[plain.data]), "s", ["c"]) == trial_identity(
        _config(glyph_benchmark, evaluate_on=[moved]), "s", ["c"]
    )  # a study folder can move
    split = read_split_file(plain.data.split_file).split("0")
    assert cross_split_hashes(cross) == (split_hash(split),)
    assert describe(cross).trial_id == trial_identity(cross, split_hash(split), [split_hash(split)])


def test_trial_ids_without_the_new_fields_are_pinned() -> None:
    """The id of the shipped trial config on split hash "s", under identity version 2 (tasks/identity.py:
    the non-default settings only, so the oracle and cross-dataset fields at their defaults leave it). Ids
    of the earlier identities (9f116a12c2ddabbe here until few-shot adaptation followed the original,
    b8cbcf0b80f96633 under identity version 1) are moved by study/migration.py."""
    raw = yaml.safe_load((ROOT / "configs" / "trial_glyphs.yaml").read_text())
    assert trial_identity(TrialConfig.model_validate(raw), "s") == "2f7a6a61e3beba2f"


def test_an_oracle_needs_its_halves_and_nothing_else() -> None:
    data = {"dataset": "glyphs", "split_file": "/s.json", "split": "0"}
    base = {"data": data, "method": {"name": "triplet"}, "role": "oracle"}
    with pytest.raises(ValidationError, match="role oracle: set heldout"):
        TrialConfig.model_validate(base)
    with pytest.raises(ValidationError, match="held-out half only"):
        TrialConfig.model_validate(base | {"heldout": {}, "fewshot": {"shots": [2]}})
    with pytest.raises(ValueError, match="subset cross, and only it"):
        Measurement("cross", "recall@1", 0.5)
    assert Measurement("cross", "recall@1", 0.5, eval_dataset="b").name == "cross/b/recall@1"


@pytest.mark.slow
def test_oracle_and_benchmark_trials_measure_the_same_heldout_images(glyph_benchmark, tmp_path) -> None:
    heldout = {"fraction": 0.5, "seed": 0}
    benchmark = _config(glyph_benchmark, heldout=heldout)
    benchmark = benchmark.model_copy(update={"evaluate_on": [benchmark.data]})
    record = run_trial(benchmark, tmp_path / "benchmark")
    assert record.identity.trial_role == "benchmark"
    for metric in ("recall@1", "map@r"):  # the same model on the same images: the same value
        cross = [m for m in record.measurements if m.subset == "cross" and m.metric == metric]
        assert [m.eval_dataset for m in cross] == ["glyphs"]
        assert cross[0].value == record.measurement("test", metric)
    held = [m for m in record.measurements if m.subset == "heldout"]
    assert held and all(m.left_out_classes == 0 for m in held)  # 8 images per class: all kept

    oracle = run_trial(_config(glyph_benchmark, heldout=heldout, role="oracle"), tmp_path / "oracle")
    assert oracle.identity.trial_role == "oracle" and oracle.trial_id != record.trial_id
    assert {m.subset for m in oracle.measurements} == {"heldout"}  # no test, val or few-shot rows
    assert {m.metric for m in oracle.measurements} == {m.metric for m in held}
    assert oracle.selected_epoch == 1  # its last epoch
    assert 0 <= oracle.measurement("heldout", "recall@1") <= 1
    assert oracle.scalars()["heldout/left_out_classes"] == 0
    split = read_split_file(glyph_benchmark["split_file"]).split("0")
    assert record.identity.num_train_classes == len(split.train)
    assert oracle.identity.num_train_classes == len(split.test)  # what it trained on: every class kept
