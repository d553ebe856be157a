"""What a trial is for: its role (``TrialConfig.role``), a small strategy object chosen once from the config.

A role says what the trial trains on, which rule selects its epoch (``tasks.selection``), whether it may
evaluate the test classes along its training (the test curve) and after it (zero-shot, per weighting and
few-shot), and what it adds to its identity. ``tasks.trial`` and ``tasks.train`` ask the role and branch
on nothing else. Roles (docs/oracle.md):

- ``benchmark``: trains on the split's train classes, selects as its protocol says, and is measured on the
  test classes;
- ``oracle``: trains on the training half of the test classes (the shift-vs-difficulty control), keeps
  its last epoch and is measured on the held-out half only.

Adding a role is a class here, its entry in ``ROLES`` and its value in ``TrialConfig.role``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tasks.config import TrialConfig
from tasks.data import LabelledImages
from tasks.oracle import oracle_training_set
from tasks.selection import LastEpoch, SelectionRule, protocol_rule
from tasks.splits.files import Split
from tasks.splits.heldout import HeldoutDivision


class TrialRole(Protocol):
    """A trial role (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def measures_test(self) -> bool:
        """Whether the trial may evaluate the test classes (along training and after it)."""
        ...

    def training_set(
        self, images: LabelledImages, split: Split, division: HeldoutDivision | None
    ) -> tuple[LabelledImages, Split]: ...

    def selection_rule(self, config: TrialConfig) -> SelectionRule: ...

    def identity(self, division: HeldoutDivision | None) -> dict[str, Any]:
        """What the role sets in the trial's identity beyond what the config says."""
        ...


@dataclass(frozen=True)
class Benchmark:
    """Trains on the split's train classes and selects by its protocol; measured on the test classes."""

    name: str = "benchmark"
    measures_test: bool = True

    def training_set(
        self, images: LabelledImages, split: Split, division: HeldoutDivision | None
    ) -> tuple[LabelledImages, Split]:
        return images, split

    def selection_rule(self, config: TrialConfig) -> SelectionRule:
        return protocol_rule(config)

    def identity(self, division: HeldoutDivision | None) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Oracle:
    """Trains on the training half of the test classes (``tasks.oracle``) and keeps its last epoch: its
    classes are the test classes, so none are left to validate on, and selecting on its held-out half
    would choose on its own evaluation. Its train classes are the kept test classes."""

    name: str = "oracle"
    measures_test: bool = False

    def training_set(
        self, images: LabelledImages, split: Split, division: HeldoutDivision | None
    ) -> tuple[LabelledImages, Split]:
        if division is None:
            raise ValueError(
                "role oracle: set heldout (the oracle trains on the training half of the test classes)"
            )
        return oracle_training_set(images, split, division)

    def selection_rule(self, config: TrialConfig) -> SelectionRule:
        return LastEpoch()

    def identity(self, division: HeldoutDivision | None) -> dict[str, Any]:
        return {"num_train_classes": len(division.classes)} if division is not None else {}


ROLES: dict[str, TrialRole] = {"benchmark": Benchmark(), "oracle": Oracle()}


def trial_role(config: TrialConfig) -> TrialRole:
    """The role ``config.role`` names."""
    return ROLES[config.role]
