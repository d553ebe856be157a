"""Margin loss (Wu et al. 2017) against loops over triplets written from ooDML's criteria/margin.py
(variant ``original``) and Wu et al.'s code (variant ``wu``): value and gradient, on an uneven batch."""

import pytest
import torch
import torch.nn.functional as F

from tasks.methods import DistanceWeightedSampler, MarginLoss, RhoDistanceSampler, build_method
from tests.methods.reference import LABELS, assert_same, embeddings

# hand-picked triplets: a singleton anchor with itself as positive (5, 10), a repeated anchor
TRIPLETS = torch.tensor(
    [[0, 1, 4], [1, 0, 6], [2, 0, 7], [3, 4, 6], [6, 7, 3], [5, 5, 8], [10, 10, 0], [8, 9, 12]]
).T


def _terms(x, labels, beta, triplets, margin):
    """Per triplet (pos, neg, beta): [d(a,p) - beta + m]_+, [beta - d(a,n) + m]_+, d = sqrt(|.|² + 1e-8)."""
    out = []
    for a, p, n in triplets.T.tolist():
        b = beta[labels[a]] if len(beta) > 1 else beta[0]
        d_ap = ((x[a] - x[p]).pow(2).sum() + 1e-8).sqrt()
        d_an = ((x[a] - x[n]).pow(2).sum() + 1e-8).sqrt()
        out.append((torch.relu(d_ap - b + margin), torch.relu(b - d_an + margin), b))
    return out


def reference_original(x, labels, beta, triplets, margin=0.2, nu=0.0):
    """sum over triplets / number of triplets with any non-zero term (the plain sum if none) + nu sum beta."""
    terms = _terms(x, labels, beta, triplets, margin)
    total = sum(p + n for p, n, _ in terms)
    count = sum(1 for p, n, _ in terms if p > 0 or n > 0)
    return (total / count if count else total) + nu * sum(b for _, _, b in terms)


def reference_wu(x, labels, beta, triplets, margin=0.2, nu=0.0):
    """(sum over triplets + nu sum beta) / number of non-zero pair terms (at least 1)."""
    terms = _terms(x, labels, beta, triplets, margin)
    total = sum(p + n for p, n, _ in terms) + nu * sum(b for _, _, b in terms)
    count = sum(int(p > 0) + int(n > 0) for p, n, _ in terms)
    return total / max(count, 1)


REFERENCES = {"original": reference_original, "wu": reference_wu}


def _loss(reduction, nu=0.0, class_specific=True, sampler=None, num_classes=6):
    loss = MarginLoss(
        num_classes,
        beta=1.2,
        margin=0.2,
        nu=nu,
        loss_lr=5e-4,
        sampler=sampler or (lambda x, y: tuple(TRIPLETS)),
        class_specific_beta=class_specific,
        reduction=reduction,
    ).double()
    with torch.no_grad():
        loss.beta.uniform_(0.9, 1.3, generator=torch.Generator().manual_seed(1))
    return loss


@pytest.mark.parametrize("reduction", ["original", "wu"])
@pytest.mark.parametrize("class_specific", [True, False])
@pytest.mark.parametrize("nu", [0.0, 0.01])
def test_matches_reference(reduction, class_specific, nu):
    loss, x = _loss(reduction, nu, class_specific), embeddings()
    ref = REFERENCES[reduction]
    assert_same(
        lambda e: loss.compute_loss(e, LABELS, tuple(TRIPLETS)),
        lambda e: ref(e, LABELS.tolist(), loss.beta, TRIPLETS, nu=nu),
        x,
        loss.beta,
    )
    assert_same(lambda e: loss(e, LABELS), lambda e: ref(e, LABELS.tolist(), loss.beta, TRIPLETS, nu=nu), x)


def test_reductions_differ_on_this_batch():
    """Some triplets have both terms non-zero, so the two counts (and losses) differ."""
    x = embeddings()
    terms = _terms(x, LABELS.tolist(), _loss("original").beta, TRIPLETS, 0.2)
    assert any(p > 0 and n > 0 for p, n, _ in terms) and any(p == 0 and n == 0 for p, n, _ in terms)
    original, wu = (_loss(r)(x, LABELS).item() for r in ("original", "wu"))
    assert original > wu * 1.05


def test_no_active_term_gives_the_plain_sum():
    """Triplets (a, a, n) with d(a, n) > beta + margin: every term is 0, the count is 0, the loss 0."""
    x, loss = embeddings(), _loss("original")
    with torch.no_grad():
        loss.beta.fill_(1.2)
    d = torch.cdist(x, x)
    anchors = torch.tensor([0, 3, 6])
    negatives = d[anchors].masked_fill(LABELS[anchors, None] == LABELS, 0).argmax(1)
    assert (d[anchors, negatives] > 1.4).all() and (LABELS[negatives] != LABELS[anchors]).all()
    triplets = (anchors, anchors, negatives)
    assert loss.compute_loss(x, LABELS, triplets).item() == 0
    ref = reference_original(x, LABELS.tolist(), loss.beta, torch.stack(triplets))
    assert float(ref.detach()) == 0


@pytest.mark.parametrize("sampler", [DistanceWeightedSampler(), RhoDistanceSampler(0.4)])
def test_with_mined_triplets(sampler):
    """The sampled tuples fed to the reference: one mining, the same triplets for both."""
    torch.manual_seed(0)
    x = embeddings()
    mined = sampler(x, LABELS)
    loss = _loss("original", sampler=lambda e, y: mined)
    assert_same(
        lambda e: loss(e, LABELS),
        lambda e: reference_original(e, LABELS.tolist(), loss.beta, torch.stack(mined)),
        x,
    )


def test_no_triplets_is_zero():
    loss, x = _loss("original"), embeddings().requires_grad_(True)
    empty = torch.zeros(0, dtype=torch.long)
    value = loss.compute_loss(x, LABELS, (empty, empty, empty))
    value.backward()
    assert value.item() == 0 and (x.grad == 0).all()


def test_beta_is_learned_per_class():
    x = F.normalize(torch.randn(8, 6), dim=1)
    loss = MarginLoss(
        5, beta=1.2, margin=0.2, nu=0.0, loss_lr=5e-4, sampler=lambda e, y: tuple(TRIPLETS[:, :5] % 8)
    )
    loss(x, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).backward()
    assert loss.beta.shape == (5,) and loss.beta.grad[4] == 0 and loss.beta.grad[:4].abs().sum() > 0
    assert loss.param_groups()[0]["lr"] == 5e-4


def test_variants_reach_the_loss():
    assert build_method("margin", num_classes=3, embedding_dim=8).reduction == "original"
    assert build_method("margin", num_classes=3, embedding_dim=8, variant="wu").reduction == "wu"
    rmargin = build_method("rmargin", num_classes=3, embedding_dim=8)
    assert rmargin.reduction == "original" and isinstance(rmargin.sampler, RhoDistanceSampler)
    with pytest.raises(ValueError, match="reduction"):
        MarginLoss(
            3, beta=1.2, margin=0.2, nu=0.0, loss_lr=5e-4, sampler=DistanceWeightedSampler(), reduction="x"
        )
