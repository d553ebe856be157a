"""What a DML method declares, apart from its code: its hyperparameters (default and search range), its
variants, the parts a composite is built from, and its builder, given or named by reference.

Plain Python: importing this module imports no torch, so the declarations (``tasks/methods/catalog.py``)
are read, listed and checked without building a method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.methods.base import Method

BUILD_ARGUMENTS = ("num_classes", "embedding_dim")  # what every builder gets besides hyperparameters


@dataclass(frozen=True)
class Hyperparameter:
    """A hyperparameter: its default and the range a tuner searches (``log``: log-uniform), or the
    ``choices`` it picks from (a switch, a set of published settings).

    The range is a search space, not a validity check: values outside it are accepted when given
    explicitly. Integer hyperparameters have integer default and bounds (a tuner suggests ints).
    ``tune=False`` declares a setting rather than something to tune (a layer size, a switch, a rate that
    follows the training's): ``search: true`` leaves it, a search that names it still searches it.
    """

    default: float | int
    low: float | int
    high: float | int
    log: bool = False
    tune: bool = True
    choices: tuple[float | int, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is not None and (
            len(set(self.choices)) < 2
            or self.default not in self.choices
            or not all(self.low <= c <= self.high for c in self.choices)
        ):
            raise ValueError(
                f"choices {self.choices} must be 2 or more values within [{self.low}, {self.high}], the "
                f"default {self.default} among them"
            )
        values = (self.default, self.low, self.high)
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise TypeError(f"hyperparameter values must be numbers, got {values}")
        if any(isinstance(v, int) for v in values) and not self.integer:
            raise TypeError(f"mix of int and float in {values}: make all three ints or all floats")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} outside [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) for v in (self.default, self.low, self.high))


@dataclass(frozen=True)
class Part:
    """A component a composite method builds from a registered method (``method``, by name).

    The part's hyperparameters join the composite's, under the same names, declared once in the part's
    module; ``hyperparameters`` may give some of them another default or range for this composite (R-
    Margin's boundary beta starts at 0.6, the margin method's at 1.2), and declares nothing new.
    """

    method: str
    hyperparameters: dict[str, Hyperparameter] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``build(num_classes=..., embedding_dim=..., **hyperparameters)``.

    ``build`` is the builder, or a reference to it, ``"package.module:name"``, imported when the method
    is first built (:func:`resolve`): the built-in methods are declared so (``tasks/methods/catalog.py``),
    and their declarations are read without importing torch.

    ``hyperparameters`` hold the defaults (the only place they live) and the tuning ranges;
    ``description`` cites the paper the method follows. ``variants`` names the definitions a method
    can follow, each with a one-line description; the first is the default (``original``: the ooDML
    code's, docs/protocol.md section 10) and ``build`` then receives ``variant=<name>``. A method without variants
    has one definition and ``build`` gets no ``variant``. A composite method (built from registered ones,
    :func:`tasks.methods.composite.composite`) declares its parts' hyperparameters among its own, in one
    flat namespace, and names its parts in ``parts``.
    """

    name: str
    build: Callable[..., Method] | str
    hyperparameters: dict[str, Hyperparameter]
    description: str
    variants: dict[str, str] = field(default_factory=dict)
    # hyperparameter -> the training setting it mirrors (``TrainingConfig`` field, e.g. ``lr``): a trial
    # sets it to that setting unless the config sets it (``tasks.config.method_hyperparameters``)
    follows: dict[str, str] = field(default_factory=dict)
    # the hyperparameter that is this method's margin-loss boundary beta (the original's
    # ``--loss_margin_beta``): few-shot adaptation with the margin loss starts from it (docs/protocol.md)
    margin_beta: str | None = None
    # role -> the registered method built as that part (``tasks.methods.composite.composite`` fills it)
    parts: dict[str, str] = field(default_factory=dict)

    def defaults(self) -> dict[str, float | int]:
        return {k: hp.default for k, hp in self.hyperparameters.items()}

    @property
    def default_variant(self) -> str | None:
        return next(iter(self.variants), None)
