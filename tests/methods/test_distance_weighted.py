"""The vectorised distance-weighted and rho-distance samplers against loops written from the formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import DistanceWeightedSampler, RhoDistanceSampler


def _batch(classes: int, per_class: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return F.normalize(torch.randn(len(labels), dim, generator=g, dtype=torch.float64), dim=1), labels


def _reference_probabilities(x, labels, lower=0.5, upper=None):
    """Wu et al.: p(j | i) ∝ q(d_ij)^-1 over negatives, q(d) ∝ d^(n-2) (1 - d²/4)^((n-3)/2), d >= lower."""
    b, n = x.shape
    probs = torch.zeros(b, b, dtype=torch.float64)
    for i in range(b):
        for j in range(b):
            if labels[i] == labels[j]:
                continue
            d = max(math.dist(x[i].tolist(), x[j].tolist()), lower)
            if upper is None or d < upper:
                probs[i, j] = d ** (2 - n) * (1 - d * d / 4) ** (-(n - 3) / 2)
        if probs[i].sum() == 0:  # nothing under the cut-off: uniform over negatives
            probs[i] = (labels != labels[i]).double()
        probs[i] /= probs[i].sum()
    return probs


@pytest.mark.parametrize("upper", [None, 1.4])
def test_probabilities_match_formula(upper):
    x, labels = _batch(classes=4, per_class=3, dim=8)
    sampler = DistanceWeightedSampler(upper_cutoff=upper)
    probs = torch.softmax(sampler.negative_log_weights(x, labels), dim=1)
    torch.testing.assert_close(probs, _reference_probabilities(x, labels, upper=upper))


def test_upper_cutoff_falls_back_to_uniform():
    x, labels = _batch(classes=4, per_class=3, dim=8)
    probs = torch.softmax(DistanceWeightedSampler(upper_cutoff=0.1).negative_log_weights(x, labels), dim=1)
    torch.testing.assert_close(probs, _reference_probabilities(x, labels, upper=0.1))
    assert torch.allclose(probs[0, 3:], torch.full((9,), 1 / 9, dtype=torch.float64))


def test_large_dimension_is_finite():
    x, labels = _batch(classes=8, per_class=2, dim=512)
    x[1] = -x[0]  # an antipodal pair, where q(d) -> 0
    x[2] = x[0]  # a duplicate, distance 0
    log_w = DistanceWeightedSampler().negative_log_weights(x.float(), labels)
    assert not torch.isnan(log_w).any() and torch.isfinite(log_w[labels[:, None] != labels]).all()


def test_draws_follow_probabilities():
    torch.manual_seed(0)
    x, labels = _batch(classes=3, per_class=4, dim=4)
    sampler = DistanceWeightedSampler()
    expected = torch.softmax(sampler.negative_log_weights(x, labels), dim=1)
    counts = torch.zeros_like(expected)
    draws = 2000
    for _ in range(draws):
        a, p, n = sampler(x, labels)
        assert (a == torch.arange(len(labels))).all()
        assert (labels[p] == labels[a]).all() and (p != a).all()
        counts[a, n] += 1
    assert (counts / draws - expected).abs().max() < 0.04


def test_positive_is_anchor_only_for_singletons():
    x = F.normalize(torch.randn(5, 8), dim=1)
    labels = torch.tensor([0, 0, 1, 2, 2])
    a, p, n = DistanceWeightedSampler()(x, labels)
    assert p[2] == 2 and (p[[0, 1, 3, 4]] == torch.tensor([1, 0, 4, 3])).all()
    assert (labels[n] != labels[a]).all()


def test_anchors_without_negatives_are_skipped():
    a, p, n = DistanceWeightedSampler()(
        F.normalize(torch.randn(4, 8), dim=1), torch.zeros(4, dtype=torch.long)
    )
    assert len(a) == len(p) == len(n) == 0


def test_rho_swap_rate():
    torch.manual_seed(0)
    x, labels = _batch(classes=16, per_class=4, dim=16)
    sampler = RhoDistanceSampler(rho=0.4)
    swapped = total = 0
    for _ in range(200):
        a, p, n = sampler(x, labels)
        swap = labels[n] == labels[a]
        assert (p[swap] == a[swap]).all() and (n[swap] != a[swap]).all()
        assert (labels[p[~swap]] == labels[a[~swap]]).all() and (p[~swap] != a[~swap]).all()
        swapped += int(swap.sum())
        total += len(a)
    assert total == 200 * len(labels)
    assert abs(swapped / total - 0.4) < 0.02


def test_rho_skips_anchors_without_other_positive():
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    a, _, _ = RhoDistanceSampler(rho=0.5)(F.normalize(torch.randn(6, 8), dim=1), labels)
    assert sorted(a.tolist()) == [0, 1, 3, 4]


def test_one_triplet_per_anchor_on_an_uneven_batch():
    """ooDML's batchminer/distance.py: every anchor, singletons included (positive = itself)."""
    from tests.methods.reference import LABELS, embeddings

    torch.manual_seed(0)
    x = embeddings()
    a, p, n = DistanceWeightedSampler().mine(x, LABELS)
    assert a.tolist() == list(range(len(LABELS)))
    alone = torch.tensor([(LABELS == y).sum() == 1 for y in LABELS])
    assert (p[alone] == a[alone]).all() and (p[~alone] != a[~alone]).all()
    assert (LABELS[p] == LABELS[a]).all() and (LABELS[n] != LABELS[a]).all()


def test_rho_triplets_on_an_uneven_batch():
    """ooDML's batchminer/rho_distance.py: anchors with another same-class sample only; a swapped
    triplet is (a, a, p) with p another sample of a's class."""
    from tests.methods.reference import LABELS, embeddings

    torch.manual_seed(0)
    x, sampler = embeddings(), RhoDistanceSampler(rho=0.5)
    for _ in range(20):
        a, p, n = sampler.mine(x, LABELS)
        assert a.tolist() == [i for i in range(len(LABELS)) if (LABELS == LABELS[i]).sum() > 1]
        swap = p == a
        assert (LABELS[n[swap]] == LABELS[a[swap]]).all() and (n[swap] != a[swap]).all()
        assert (LABELS[p[~swap]] == LABELS[a[~swap]]).all() and (LABELS[n[~swap]] != LABELS[a[~swap]]).all()
