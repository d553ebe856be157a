"""Each rule on a trial's settings is declared once, on the trial's models (``tasks.config``): ``oodml run``
refuses a study whose trials would break it with the line ``oodml trial`` refuses such a trial with."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study.overrides import apply_overrides
from study.spec import SpecError, load_spec
from tasks.config import ConfigError, load_trial_config

STUDY = {
    "name": "rules",
    "datasets": [{"name": "glyphs", "splits": {"select": 2}}],
    "methods": [{"name": "triplet"}],
    "model": {"backbone": "glyph_cnn", "embedding_dim": 16, "pretrained": False},
    "training": {"epochs": 1, "batch_size": 8, "samples_per_class": 2},
    "fewshot": {"budgets": [0, 2], "iterations": {2: 3}},
    "tuning": {"trials": 0},
}
TRIAL = {
    "data": {"dataset": "glyphs", "split_file": "splits.json", "split": "0"},
    "method": {"name": "triplet"},
    "model": STUDY["model"],
    "training": STUDY["training"],
    "fewshot": {"shots": [2], "iterations": {2: 3}},
}


def _study_lines(overrides: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(apply_overrides(STUDY, overrides))
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


def _trial_lines(overrides: dict, tmp_path: Path) -> list[str]:
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(apply_overrides(TRIAL, overrides)))
    with pytest.raises(ConfigError) as caught:
        load_trial_config(path)
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


@pytest.mark.parametrize(
    ("study", "trial", "expected"),
    [
        (
            {"fewshot.budgets": [0, 3]},
            {"fewshot.shots": [3]},
            "fewshot.iterations: no entry for budgets [3] (has [2])",
        ),
        (
            {"training.protocol": "paper"},
            {"training.protocol": "paper"},
            "training.protocol: 'paper' selects the epoch on the test classes, so adapting to them (shot "
            "budgets [2])",
        ),
        ({"training.epochs": -1}, {"training.epochs": -1}, "training.epochs: at least 0"),
        ({"training.batch_size": 9}, {"training.batch_size": 9}, "training: batch_size 9 must be divisible"),
    ],
)
def test_a_study_and_a_trial_are_refused_with_the_same_line(study, trial, expected, tmp_path) -> None:
    study_lines, trial_lines = _study_lines(study), _trial_lines(trial, tmp_path)
    assert len(study_lines) == 1 and study_lines[0].startswith(expected)
    assert study_lines == trial_lines


def test_a_paper_trial_that_does_not_evaluate_the_test_classes_is_refused(tmp_path) -> None:
    [line] = _trial_lines(
        {"training.protocol": "paper", "fewshot.shots": [], "evaluate_test": False}, tmp_path
    )
    assert line.startswith("training.protocol: 'paper' selects the epoch on the test classes, but this trial")
    assert line.endswith("use protocol 'validated'")
