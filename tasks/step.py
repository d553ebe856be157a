"""One training step, the same for training a model and for few-shot adaptation.

A step (``TrainingStep.__call__``) takes a loader's batch and runs: the caller's ``forward`` (the batch
through the model, under autocast where it asks, into a ``TrainBatch``), the method's ``training_loss``,
backward through the AMP ``GradScaler`` (a disabled scaler is plain backward and step), the optimizer's
step and the method's ``after_step`` (skipped where AMP skipped the optimizer step: the scale was lowered).
The loss is kept, detached, per step (``LossLog``) and checked finite: on the CPU at every step, on an
accelerator every ``CHECK_EVERY`` steps (reading a loss back waits for the device), the error naming the
first non-finite step either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from tasks.methods import Method, TrainBatch

CHECK_EVERY = 32  # steps between reads of the losses on an accelerator (one wait for the device each)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def check_finite(losses: Tensor, start: int, stop: int, where: Callable[[int], str]) -> None:
    """Raise ``NonFiniteLossError`` naming the first non-finite loss among steps ``start:stop``;
    ``where(step)`` says where that step was (``at epoch 3, step 2 of method 'margin': ...``)."""
    bad = torch.nonzero(~torch.isfinite(losses[start:stop])).flatten().tolist()
    if bad:
        step = start + bad[0]
        raise NonFiniteLossError(f"non-finite loss ({losses[step].item()}) {where(step)}")


# Checks the losses of steps ``start:stop`` (``check_finite`` with where the steps were).
Check = Callable[[Tensor, int, int], None]


@dataclass
class LossLog:
    """The losses of one run of steps (an epoch, an adaptation), detached and kept on ``device`` (room for
    ``steps``, grown if more come), and each step's named terms of a composite method (``Method.terms``).
    ``check`` runs every ``check_every`` steps on the steps not checked yet, and on the rest at the end."""

    steps: int
    device: torch.device
    check: Check
    check_every: int = 1
    losses: Tensor = field(init=False)
    terms: dict[str, list[Tensor]] = field(default_factory=dict)
    taken: int = 0
    checked: int = 0

    def __post_init__(self) -> None:
        self.losses = torch.zeros(max(self.steps, 1), device=self.device)

    def add(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        """Keep one step's loss and terms; check the steps not checked yet every ``check_every`` steps."""
        if self.taken == len(self.losses):
            self.losses = torch.cat([self.losses, torch.zeros_like(self.losses)])
        self.losses[self.taken] = loss.detach()
        for name, value in terms.items():
            self.terms.setdefault(name, []).append(value)
        self.taken += 1
        if self.taken - self.checked >= self.check_every:
            self.finish()

    def finish(self) -> None:
        """Check the steps kept since the last check (at the end of a run: the rest)."""
        self.check(self.losses, self.checked, self.taken)
        self.checked = self.taken

    def mean(self) -> float:
        """The mean loss over the steps taken (float64)."""
        return self.losses[: self.taken].double().mean().item()

    def term_means(self) -> dict[str, float]:
        """Each named term's mean over the steps (float64)."""
        return {name: torch.stack(v).double().mean().item() for name, v in self.terms.items()}


@dataclass
class TrainingStep:
    """The step of one training: ``forward`` makes a loader's batch into a ``TrainBatch``; ``model`` is
    what ``Method.after_step`` sees."""

    forward: Callable[[Sequence[Tensor]], TrainBatch]
    model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler

    def __post_init__(self) -> None:
        # Reading the AMP scale back waits for the device: only for a method whose after_step does something.
        self._reads_scale = self.scaler.is_enabled() and type(self.method).after_step is not Method.after_step

    def __call__(self, items: Sequence[Tensor], log: LossLog) -> None:
        loss = self.method.training_loss(self.forward(items))
        log.add(loss, self.method.terms)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        scale = self.scaler.get_scale() if self._reads_scale else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if scale is None or self.scaler.get_scale() >= scale:  # a lowered scale: the step was skipped
            self.method.after_step(self.model)


def check_every(device: torch.device) -> int:
    """How many steps pass between checks of the losses on ``device``: every step on the CPU."""
    return 1 if device.type == "cpu" else CHECK_EVERY
