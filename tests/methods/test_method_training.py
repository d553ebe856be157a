"""Every registered method, from its defaults, lowers its own loss on a tiny separable problem."""

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import METHODS, build_method

CLASSES, PER_CLASS, DIM = 8, 4, 16


def _losses(name: str, steps: int = 50) -> list[float]:
    torch.manual_seed(0)
    centres = torch.randn(CLASSES, DIM)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    inputs = centres[labels] + 0.7 * torch.randn(len(labels), DIM)
    embed = torch.nn.Linear(DIM, DIM)
    method = build_method(name, num_classes=CLASSES, embedding_dim=DIM)
    optimizer = torch.optim.Adam([{"params": embed.parameters(), "lr": 1e-2}, *method.param_groups()])
    losses = []
    for _ in range(steps):
        loss = method(F.normalize(embed(inputs), dim=1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_goes_down(name):
    losses = _losses(name)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)
