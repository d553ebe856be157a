"""Shared fixed inputs and the value-and-gradient comparison for the loss tests."""

import torch
import torch.nn.functional as F

# classes of sizes 3, 2, 1, 4, 1, 2: uneven, with two samples alone in their class
LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5, 5])


def embeddings(dim: int = 6, seed: int = 0, labels: torch.Tensor = LABELS) -> torch.Tensor:
    """Unit rows (float64), with a near-duplicate across classes 1 and 3 so that hard negatives exist."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
    x[6] = x[3] + 0.05 * torch.randn(dim, generator=g, dtype=torch.float64)
    return F.normalize(x, dim=1)


def value_and_grad(fn, x: torch.Tensor, *others: torch.Tensor):
    """fn(x) and its gradient w.r.t. x (and ``others``, leaf tensors fn uses)."""
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    grads = torch.autograd.grad(value, (x, *others), allow_unused=True)
    return value.detach(), grads


def assert_same(fn, reference, x: torch.Tensor, *others: torch.Tensor) -> None:
    """Same value and gradient (w.r.t. x and ``others``) at 1e-6."""
    value, grads = value_and_grad(fn, x, *others)
    ref_value, ref_grads = value_and_grad(reference, x, *others)
    torch.testing.assert_close(value, ref_value, rtol=1e-6, atol=1e-6)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-6)
