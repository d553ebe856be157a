"""Margin loss (Wu et al. 2017) against a loop over triplets written from the paper's formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import MarginLoss

TRIPLETS = torch.tensor([[0, 1, 4], [1, 0, 6], [2, 3, 7], [4, 5, 0], [6, 7, 2], [3, 3, 5]]).T


def _fixed(embeddings, labels):
    return TRIPLETS[0], TRIPLETS[1], TRIPLETS[2]


def _reference(x, labels, betas, margin, nu):
    """sum over pairs of [d_ap - beta + m]_+ and [beta - d_an + m]_+, plus nu * sum(beta), divided by
    the number of non-zero pair terms."""
    total, active = nu * sum(betas[labels[a]] for a in TRIPLETS[0].tolist()), 0
    for a, p, n in TRIPLETS.T.tolist():
        beta = betas[labels[a]]
        for term in (math.dist(x[a], x[p]) - beta + margin, beta - math.dist(x[a], x[n]) + margin):
            if term > 0:
                total, active = total + term, active + 1
    return total / max(active, 1)


@pytest.mark.parametrize("class_specific", [True, False])
@pytest.mark.parametrize("nu", [0.0, 0.01])
def test_matches_formula(class_specific, nu):
    torch.manual_seed(0)
    x = F.normalize(torch.randn(8, 6, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = MarginLoss(
        4, beta=1.2, margin=0.2, nu=nu, loss_lr=5e-4, sampler=_fixed, class_specific_beta=class_specific
    ).double()
    with torch.no_grad():
        loss.beta.uniform_(0.9, 1.3)
    betas = loss.beta.tolist() if class_specific else [loss.beta.item()] * 4
    expected = _reference(x.tolist(), labels.tolist(), betas, 0.2, nu)
    assert loss(x, labels).item() == pytest.approx(expected, rel=1e-6)


def test_beta_is_learned_per_class():
    x = F.normalize(torch.randn(8, 6), dim=1)
    loss = MarginLoss(5, beta=1.2, margin=0.2, nu=0.0, loss_lr=5e-4, sampler=_fixed)
    loss(x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).backward()
    assert loss.beta.shape == (5,) and loss.beta.grad[4] == 0 and loss.beta.grad[:4].abs().sum() > 0
    assert loss.param_groups()[0]["lr"] == 5e-4
