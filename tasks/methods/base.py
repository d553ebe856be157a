"""What every DML method is: a loss module over a batch of embeddings, plus its declared hyperparameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class Hyperparameter:
    """A tunable hyperparameter: its default and the range a tuner searches (``log``: log-uniform).

    The range is a search space, not a validity check: values outside it are accepted when given
    explicitly. Integer hyperparameters have integer default and bounds (a tuner suggests ints).
    """

    default: float | int
    low: float | int
    high: float | int
    log: bool = False

    def __post_init__(self) -> None:
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


class Method(nn.Module):
    """A DML method: ``forward(embeddings, labels)`` returns the scalar training loss.

    ``embeddings`` are L2-normalised (B, D) rows; ``labels`` are int64 train-class indices
    0..num_classes-1. Methods with their own parameters (proxies, class margins) train them at
    ``loss_lr``; :meth:`param_groups` gives the optimizer group for them.
    """

    def __init__(self, loss_lr: float = 0.0) -> None:
        super().__init__()
        self.loss_lr = loss_lr

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """The optimizer group for the method's own parameters (none if it has none), at ``loss_lr``
        and without weight decay, as in the ooDML code."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": self.loss_lr, "weight_decay": 0.0}] if params else []


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``build(num_classes=..., embedding_dim=..., **hyperparameters)``.

    ``hyperparameters`` hold the defaults (the only place they live) and the tuning ranges;
    ``description`` cites the paper the method follows.
    """

    name: str
    build: Callable[..., Method]
    hyperparameters: dict[str, Hyperparameter]
    description: str

    def defaults(self) -> dict[str, float | int]:
        return {k: hp.default for k, hp in self.hyperparameters.items()}
