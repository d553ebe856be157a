"""Losses with their own class parameters against loops written from their papers' formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import build_method

LABELS = torch.tensor([0, 0, 1, 2, 2, 4])


def _embeddings():
    torch.manual_seed(0)
    return F.normalize(torch.randn(len(LABELS), 8, dtype=torch.float64), dim=1)


def _cos(u, v):
    return sum(a * b for a, b in zip(u, v, strict=True)) / math.sqrt(
        sum(a * a for a in u) * sum(b * b for b in v)
    )


def test_proxynca():
    """-log(exp(-d(x, p_y)) / sum_{z != y} exp(-d(x, p_z))), d squared distance on a radius-s sphere."""
    method = build_method("proxynca", num_classes=5, embedding_dim=8, scale=3.0).double()
    x, proxies = _embeddings(), F.normalize(method.proxies.detach(), dim=1)
    expected = 0.0
    for xi, y in zip(x.tolist(), LABELS.tolist(), strict=True):
        d = [9 * sum((a - b) ** 2 for a, b in zip(xi, p, strict=True)) for p in proxies.tolist()]
        expected += d[y] + math.log(sum(math.exp(-dz) for z, dz in enumerate(d) if z != y))
    assert method(x, LABELS).item() == pytest.approx(expected / len(LABELS), rel=1e-6)


def test_softtriple():
    method = build_method("softtriple", num_classes=5, embedding_dim=8, centers_per_class=3).double()
    x, centers = _embeddings(), F.normalize(method.centers.detach(), dim=2).tolist()
    la, gamma, delta, tau = 20.0, 0.1, 0.01, 0.2
    ce = 0.0
    for xi, y in zip(x.tolist(), LABELS.tolist(), strict=True):
        logits = []
        for c, class_centers in enumerate(centers):
            sims = [_cos(xi, w) for w in class_centers]
            weights = [math.exp(s / gamma) for s in sims]
            s_c = sum(w * s for w, s in zip(weights, sims, strict=True)) / sum(weights)
            logits.append(la * (s_c - (delta if c == y else 0.0)))
        ce += -logits[y] + math.log(sum(math.exp(v) for v in logits))
    reg = sum(
        math.sqrt(2 + 1e-5 - 2 * _cos(w[t], w[s])) for w in centers for t in range(3) for s in range(t + 1, 3)
    )
    expected = ce / len(LABELS) + tau * reg / (5 * 3 * 2)
    assert method(x, LABELS).item() == pytest.approx(expected, rel=1e-6)


def test_arcface_margin_is_in_radians():
    """CE over s * cos(theta_j), with cos(theta_y + m) for the true class (m = 0.5 rad, s = 16)."""
    method = build_method("arcface", num_classes=5, embedding_dim=8).double()
    x, w = _embeddings(), method.loss.W.detach().T.tolist()
    expected = 0.0
    for xi, y in zip(x.tolist(), LABELS.tolist(), strict=True):
        logits = [16 * _cos(xi, wc) for wc in w]
        logits[y] = 16 * math.cos(math.acos(_cos(xi, w[y])) + 0.5)
        expected += -logits[y] + math.log(sum(math.exp(v) for v in logits))
    assert method(x, LABELS).item() == pytest.approx(expected / len(LABELS), rel=1e-6)


def test_proxyanchor():
    """Kim et al.: mean over proxies with positives of log(1 + sum_pos exp(-a(s - d))) plus mean over
    all proxies of log(1 + sum_neg exp(a(s + d)))."""
    method = build_method("proxyanchor", num_classes=5, embedding_dim=8).double()
    x, proxies = _embeddings(), method.loss.proxies.detach().tolist()
    alpha, delta = 32.0, 0.1
    pos, neg = [], []
    for c, p in enumerate(proxies):
        sims = [(_cos(xi, p), y == c) for xi, y in zip(x.tolist(), LABELS.tolist(), strict=True)]
        if any(own for _, own in sims):
            pos.append(math.log(1 + sum(math.exp(-alpha * (s - delta)) for s, own in sims if own)))
        neg.append(math.log(1 + sum(math.exp(alpha * (s + delta)) for s, own in sims if not own)))
    expected = sum(pos) / len(pos) + sum(neg) / len(neg)
    assert method(x, LABELS).item() == pytest.approx(expected, rel=1e-6)
