"""Every registered method, from its defaults, lowers its own loss on a tiny separable problem."""

import math

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import METHODS, build_method

CLASSES, PER_CLASS, DIM = 8, 4, 16
# Where a loss settles once the batch is separated: ooDML's multi-similarity is the constant
# softplus(0) / weight per term when no pair is mined (tasks/methods/multisimilarity.py).
FLOORS = {("multisimilarity", "original"): math.log(2) / 2 + math.log(2) / 40}


def _losses(name: str, variant: str | None = None, steps: int = 50) -> list[float]:
    torch.manual_seed(0)
    centres = torch.randn(CLASSES, DIM)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    inputs = centres[labels] + 0.7 * torch.randn(len(labels), DIM)
    embed = torch.nn.Linear(DIM, DIM)
    method = build_method(name, num_classes=CLASSES, embedding_dim=DIM, variant=variant)
    optimizer = torch.optim.Adam([{"params": embed.parameters(), "lr": 1e-2}, *method.param_groups()])
    losses = []
    for _ in range(steps):
        loss = method(F.normalize(embed(inputs), dim=1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _trains(name: str) -> bool:
    return build_method(name, num_classes=4, embedding_dim=16).trains


@pytest.mark.parametrize(
    ("name", "variant"),
    [(name, v) for name, spec in sorted(METHODS.items()) if _trains(name) for v in spec.variants or [None]],
)
def test_loss_goes_down(name, variant):
    """Every method that trains lowers its loss on a tiny batch (``frozen`` never trains)."""
    floor = FLOORS.get((name, variant), 0.0)
    losses = [v - floor for v in _losses(name, variant)]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)
