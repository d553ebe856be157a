"""Trial roles and selection rules (``tasks.roles``, ``tasks.selection``), from their definitions: a
benchmark trial selects as its protocol says (validated: the named validation metrics summed; paper: test
Recall@1), an oracle keeps its last epoch and evaluates no class along its training; what each epoch
evaluates follows from the rule and the test curve's schedule."""

from __future__ import annotations

import typing

import pytest

from tasks.config import TrialConfig, TrialRole
from tasks.roles import ROLES, Benchmark, Oracle, trial_role
from tasks.selection import BEST_ON_TEST, BestOn, LastEpoch
from tasks.train import evaluated_subsets

EVALUATED = {
    "val": {"recall@1": 0.5, "map@r": 0.25, "map@1000": 0.125},
    "test": {"recall@1": 0.75, "map@r": 2.0},
}


def _config(role: str = "benchmark", protocol: str = "validated", **training) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "x.json", "split": "0"},
            "method": {"name": "margin"},
            "training": {"protocol": protocol, "epochs": 5, **training},
            "role": role,
            **({"heldout": {}} if role == "oracle" else {}),
        }
    )


def test_every_configurable_role_has_its_strategy() -> None:
    assert set(ROLES) == set(typing.get_args(TrialRole))
    assert all(role.name == name for name, role in ROLES.items())


@pytest.mark.parametrize(
    ("role", "protocol", "rule"),
    [
        ("benchmark", "validated", BestOn("val", ("recall@1", "map@r"))),
        ("benchmark", "paper", BestOn("test", ("recall@1",))),
        ("oracle", "validated", LastEpoch()),
        ("oracle", "paper", LastEpoch()),
    ],
)
def test_the_rule_is_chosen_by_role_then_protocol(role, protocol, rule) -> None:
    config = _config(role, protocol)
    assert trial_role(config).selection_rule(config) == rule


def test_validated_sums_the_named_validation_metrics() -> None:
    config = _config(selection_metric=["recall@1", "map@1000"])
    rule = trial_role(config).selection_rule(config)
    assert rule.subset == "val" and rule.score(3, EVALUATED) == 0.5 + 0.125
    with pytest.raises(ValueError, match=r"\['map@1000'\] not computed"):
        rule.score(3, {"val": {"recall@1": 0.5}, "test": {"map@1000": 1.0}})


def test_paper_scores_test_recall_at_1_only() -> None:
    assert BEST_ON_TEST.subset == "test" and BEST_ON_TEST.score(0, EVALUATED) == 0.75


def test_last_epoch_prefers_every_later_epoch() -> None:
    rule = LastEpoch()
    scores = [rule.score(epoch, {}) for epoch in range(6)]
    assert rule.subset is None and scores == sorted(set(scores))


@pytest.mark.parametrize(
    ("role", "protocol", "training", "expected"),
    [
        # validated: the validation classes every epoch, the test curve on its schedule (every 2, and the last)
        (
            "benchmark",
            "validated",
            {"test_curve_every": 2},
            [("val",), ("val", "test")] * 2 + [("val", "test")],
        ),
        ("benchmark", "validated", {"record_test_curve": False}, [("val",)] * 5),
        # paper: the test classes every epoch, curve or not; no validation classes
        ("benchmark", "paper", {"record_test_curve": False}, [("test",)] * 5),
        # an oracle: nothing (its classes are the test classes)
        ("oracle", "validated", {"test_curve_every": 1}, [()] * 5),
    ],
)
def test_what_each_epoch_evaluates(role, protocol, training, expected) -> None:
    config = _config(role, protocol, **training)
    rule = trial_role(config).selection_rule(config)
    assert [evaluated_subsets(config, rule, epoch) for epoch in range(5)] == expected


def test_a_trial_that_does_not_evaluate_test_classes_evaluates_validation_only() -> None:
    config = _config(test_curve_every=1).model_copy(update={"evaluate_test": False})
    rule = trial_role(config).selection_rule(config)
    assert [evaluated_subsets(config, rule, epoch) for epoch in range(5)] == [("val",)] * 5


def test_what_each_role_is_measured_on_and_adds_to_its_identity() -> None:
    assert Benchmark().measures_test and not Oracle().measures_test
    assert Benchmark().identity(None) == {}
