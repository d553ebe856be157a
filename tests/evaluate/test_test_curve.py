"""Which epochs evaluate the test classes (``training.test_curve_every``)."""

import pytest

from tasks.config import TrialConfig
from tasks.train import evaluates_test_curve


def _config(evaluate_test: bool = True, **training) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "x.json", "split": "0"},
            "method": {"name": "margin"},
            "training": training,
            "evaluate_test": evaluate_test,
        }
    )


def _epochs(config: TrialConfig) -> list[int]:
    return [e for e in range(config.training.epochs) if evaluates_test_curve(config, e)]


def test_default_is_about_twenty_points_and_the_last_epoch() -> None:
    assert _epochs(_config(epochs=5)) == [0, 1, 2, 3, 4]
    sop = _epochs(_config(epochs=150))  # SOP in the paper: every 8 epochs
    assert sop[:3] == [7, 15, 23] and sop[-2:] == [143, 149] and len(sop) == 19
    assert len(_epochs(_config(epochs=200))) == 20  # CUB, CARS: every 10


def test_explicit_cadence_and_switches() -> None:
    assert _epochs(_config(epochs=7, test_curve_every=3)) == [2, 5, 6]
    assert _epochs(_config(epochs=7, test_curve_every=1)) == list(range(7))
    assert _epochs(_config(epochs=7, record_test_curve=False)) == []
    assert _epochs(_config(False, epochs=7, test_curve_every=1)) == []


def test_paper_protocol_evaluates_the_test_classes_every_epoch() -> None:
    config = _config(epochs=150, protocol="paper", test_curve_every=10, record_test_curve=False)
    assert _epochs(config) == list(range(150))


def test_cadence_must_be_positive() -> None:
    with pytest.raises(ValueError, match="test_curve_every"):
        _config(test_curve_every=0)
