"""Losses with their own class parameters against loops written from their definitions (ooDML's
criteria/{proxynca,arcface,oproxy}.py for the defaults): value and gradient w.r.t. the embeddings and
the class parameters; ``pml`` variants against pytorch-metric-learning's losses."""

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses

from tasks.methods import build_method
from tests.methods.reference import LABELS, assert_same, embeddings

CLASSES = 7  # class 6 has no sample in the batch


def _cos(u, v):
    return (u @ v) / (u.norm() * v.norm())


def reference_proxynca(x, proxies, labels, scale=3.0):
    """1/B sum_i d(x_i, p_y) + 1/B sum_i log sum_{z != y} exp(-d(x_i, p_z)), d squared distance between
    the rows scaled to norm ``scale``."""
    pos = neg = 0
    for xi, y in zip(x, labels, strict=True):
        d = [(scale * xi / xi.norm() - scale * p / p.norm()).pow(2).sum() for p in proxies]
        pos = pos + d[y]
        neg = neg + torch.log(sum(torch.exp(-dz) for z, dz in enumerate(d) if z != y))
    return pos / len(labels) + neg / len(labels)


def test_proxynca():
    method = build_method("proxynca", num_classes=CLASSES, embedding_dim=6).double()
    assert method.proxies.std().item() == pytest.approx(1 / 8, rel=0.3)
    assert_same(
        lambda e: method(e, LABELS),
        lambda e: reference_proxynca(e, method.proxies, LABELS.tolist()),
        embeddings(),
        method.proxies,
    )


def reference_arcface(x, weights, labels, margin=0.5, scale=16.0, clamp=True):
    """1/B sum_i CE over s * c_ij, c_iy replaced by cos(arccos(c_iy) + m); every c_ij clamped to
    [1e-10, 1 - 1e-10] (ooDML), or not (``clamp=False``)."""
    total = 0
    for xi, y in zip(x, labels, strict=True):
        logits = []
        for c, w in enumerate(weights):
            cos = xi @ (w / w.norm())
            if clamp:
                cos = cos.clamp(1e-10, 1 - 1e-10)
            logits.append(scale * (torch.cos(torch.acos(cos) + margin) if c == y else cos))
        total = total - logits[y] + torch.logsumexp(torch.stack(logits), 0)
    return total / len(labels)


def test_arcface():
    method = build_method("arcface", num_classes=CLASSES, embedding_dim=6).double()
    w = method.class_weights
    assert w.abs().max() <= 1 / math.sqrt(6)
    assert_same(
        lambda e: method(e, LABELS), lambda e: reference_arcface(e, w, LABELS.tolist()), embeddings(), w
    )


def test_arcface_clamp_matters():
    """On this batch many cosines (targets included) are negative: dropping ooDML's clamp changes the loss."""
    method = build_method("arcface", num_classes=CLASSES, embedding_dim=6).double()
    x, w = embeddings(), method.class_weights.detach()
    cos = x @ F.normalize(w, dim=1).T
    assert (cos.gather(1, LABELS[:, None]) < 0).any() and (cos < 0).float().mean() > 0.3
    unclamped = reference_arcface(x, w, LABELS.tolist(), clamp=False)
    assert abs(method(x, LABELS).item() - unclamped.item()) > 0.1


def test_arcface_pml_variant_is_pml():
    method = build_method("arcface", num_classes=CLASSES, embedding_dim=6, variant="pml").double()
    pml = losses.ArcFaceLoss(CLASSES, 6, margin=math.degrees(0.5), scale=16.0).double()
    with torch.no_grad():
        pml.W.copy_(method.loss.W)
    assert_same(lambda e: method(e, LABELS), lambda e: pml(e, LABELS), embeddings())
    original = build_method("arcface", num_classes=CLASSES, embedding_dim=6).double()
    with torch.no_grad():
        original.class_weights.copy_(method.loss.W.T)
    assert abs(original(embeddings(), LABELS).item() - method(embeddings(), LABELS).item()) > 0.1


def _per_proxy_positive(x, proxies, labels, alpha, delta):
    """log(1 + sum_{i in class c} exp(-alpha (s_ic - delta))) for each class c present."""
    return {
        c: torch.log(
            1
            + sum(
                torch.exp(-alpha * (_cos(xi, proxies[c]) - delta))
                for xi, y in zip(x, labels, strict=True)
                if y == c
            )
        )
        for c in set(labels)
    }


def reference_proxyanchor(x, proxies, labels, alpha=32.0, delta=0.1, per_sample=True):
    """ooDML oproxy (anchor mode): 1/B sum_j pos(y_j) + mean over proxies c with a sample of another class
    of log(1 + sum_{i: y_i != c} exp(alpha (s_ic + delta))); ``per_sample=False``: the positive term
    averaged over the proxies present instead (Kim et al.'s convention)."""
    pos = _per_proxy_positive(x, proxies, labels, alpha, delta)
    if per_sample:
        pos_term = sum(pos[y] for y in labels) / len(labels)
    else:
        pos_term = sum(pos.values()) / len(pos)
    neg = []
    for c, p in enumerate(proxies):
        others = [xi for xi, y in zip(x, labels, strict=True) if y != c]
        if others:
            neg.append(torch.log(1 + sum(torch.exp(alpha * (_cos(xi, p) + delta)) for xi in others)))
    return pos_term + sum(neg) / len(neg)


def test_proxyanchor():
    method = build_method("proxyanchor", num_classes=CLASSES, embedding_dim=6).double()
    p = method.proxies
    assert p.std().item() == pytest.approx(1 / 8, rel=0.3) and method.param_groups()[0]["lr"] == 2e-2
    # the loss normalises its input: feed rows of different norms
    x = embeddings() * torch.linspace(0.5, 2.0, len(LABELS), dtype=torch.float64)[:, None]
    assert_same(lambda e: method(e, LABELS), lambda e: reference_proxyanchor(e, p, LABELS.tolist()), x, p)


def test_proxyanchor_per_sample_averaging_matters():
    """Classes of 1 to 4 samples: averaging the positive term over samples (ooDML) differs from
    averaging it over the proxies present."""
    method = build_method("proxyanchor", num_classes=CLASSES, embedding_dim=6).double()
    x, p = embeddings(), method.proxies.detach()
    per_proxy = reference_proxyanchor(x, p, LABELS.tolist(), per_sample=False)
    assert abs(method(x, LABELS).item() - per_proxy.item()) > 0.05


def test_proxyanchor_single_class_batch():
    method = build_method("proxyanchor", num_classes=1, embedding_dim=6).double()
    x, labels = embeddings()[:3], torch.zeros(3, dtype=torch.long)
    pos = sum(_per_proxy_positive(x, method.proxies, [0, 0, 0], 32.0, 0.1).values())
    torch.testing.assert_close(method(x, labels), pos + math.log(2))


def test_proxyanchor_pml_variant_is_pml():
    method = build_method("proxyanchor", num_classes=CLASSES, embedding_dim=6, variant="pml").double()
    pml = losses.ProxyAnchorLoss(CLASSES, 6, margin=0.1, alpha=32.0).double()
    with torch.no_grad():
        pml.proxies.copy_(method.loss.proxies)
    assert_same(lambda e: method(e, LABELS), lambda e: pml(e, LABELS), embeddings())


def test_softtriple():
    method = build_method("softtriple", num_classes=5, embedding_dim=8, centers_per_class=3).double()
    labels = torch.tensor([0, 0, 1, 2, 2, 4])
    torch.manual_seed(0)
    x = F.normalize(torch.randn(len(labels), 8, dtype=torch.float64), dim=1)
    centers = F.normalize(method.centers.detach(), dim=2)
    la, gamma, delta, tau = 20.0, 0.1, 0.01, 0.2
    ce = 0.0
    for xi, y in zip(x, labels.tolist(), strict=True):
        logits = []
        for c, class_centers in enumerate(centers):
            sims = [float(_cos(xi, w)) for w in class_centers]
            weights = [math.exp(s / gamma) for s in sims]
            s_c = sum(w * s for w, s in zip(weights, sims, strict=True)) / sum(weights)
            logits.append(la * (s_c - (delta if c == y else 0.0)))
        ce += -logits[y] + math.log(sum(math.exp(v) for v in logits))
    reg = sum(
        math.sqrt(2 + 1e-5 - 2 * float(_cos(w[t], w[s])))
        for w in centers
        for t in range(3)
        for s in range(t + 1, 3)
    )
    expected = ce / len(labels) + tau * reg / (5 * 3 * 2)
    assert method(x, labels).item() == pytest.approx(expected, rel=1e-6)
