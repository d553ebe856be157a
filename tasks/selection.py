"""Which epoch a training keeps: selection rules, each a small object with one job, chosen once from the config.

A rule names the classes it scores an epoch on (``subset``: what ``tasks.train`` evaluates every epoch
for it; None: none) and scores an epoch from the metrics evaluated there (higher is better; a tie keeps
the earlier epoch). The rules (docs/protocol.md section 6, docs/oracle.md):

- ``BestOn`` a subset's classes: under protocol ``validated``, ``training.selection_metric`` summed over
  the validation classes (``best_on_validation``); under protocol ``paper``, test Recall@1
  (``BEST_ON_TEST``), as the released ooDML code selects, so numbers compare with the published ones;
- ``LastEpoch`` (an oracle, whose classes are the test classes: no classes are left to validate on, and
  selecting on its held-out half would choose on its own evaluation).

A trial's rule is its role's (``tasks.roles.TrialRole.selection_rule``): the protocol's
(``protocol_rule``) for a benchmark trial. Adding a rule is a class here and the role or protocol that
chooses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tasks.config import TrialConfig
from tasks.metric_names import recall_name

# Metrics evaluated at one epoch: subset -> metric -> value.
Evaluated = Mapping[str, Mapping[str, float]]


class SelectionRule(Protocol):
    """Scores an epoch; ``subset``: the classes it is scored on (evaluated every epoch), or None."""

    @property
    def subset(self) -> str | None: ...

    def score(self, epoch: int, evaluated: Evaluated) -> float: ...


def summed(metrics: Mapping[str, float], names: tuple[str, ...]) -> float:
    """The sum of the named metrics; an error names the ones not computed."""
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ValueError(f"selection metric(s) {missing} not computed; available: {sorted(metrics)}")
    return float(sum(metrics[n] for n in names))


@dataclass(frozen=True)
class BestOn:
    """The epoch of the highest sum of ``metrics`` on the ``subset`` classes."""

    subset: str
    metrics: tuple[str, ...]

    def score(self, epoch: int, evaluated: Evaluated) -> float:
        return summed(evaluated.get(self.subset, {}), self.metrics)


def best_on_validation(config: TrialConfig) -> BestOn:
    """Protocol ``validated``: ``training.selection_metric`` summed over the validation classes."""
    return BestOn("val", tuple(config.training.selection_metric))


# Protocol ``paper``: test Recall@1, what the released ooDML code keeps (and the published numbers were
# selected on).
BEST_ON_TEST = BestOn("test", (recall_name(1),))


@dataclass(frozen=True)
class LastEpoch:
    """The last epoch (an oracle's): each epoch scores its index, so the latest is the best."""

    subset: None = None

    def score(self, epoch: int, evaluated: Evaluated) -> float:
        return float(epoch)


def protocol_rule(config: TrialConfig) -> SelectionRule:
    """The rule of ``training.protocol``: ``best_on_validation`` (``validated``) or ``BEST_ON_TEST``
    (``paper``).
    A trial role may choose another (``tasks.roles``: an oracle keeps its last epoch)."""
    return BEST_ON_TEST if config.training.protocol == "paper" else best_on_validation(config)
