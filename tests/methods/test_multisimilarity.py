"""Multi-similarity (ooDML's criteria/multisimilarity.py) against loops over anchors and pairs written
from its definition; the ``pml`` variant against pytorch-metric-learning's loss and miner."""

import math

import pytest
import torch
from pytorch_metric_learning import losses, miners

from tasks.methods import build_method
from tasks.methods.multisimilarity import MultiSimilarity, MultiSimilarityMiner
from tests.methods.reference import LABELS, assert_same, embeddings


def reference_pairs(x, labels, epsilon=0.1):
    """Per anchor j: P(j) = same class (j included) with S_ij - eps < max negative sim of j;
    N(j) = other class with S_ij + eps > min positive sim of j (no bound: nothing mined)."""
    s = (x @ x.T).tolist()
    b = len(labels)
    pos, neg = {}, {}
    for j in range(b):
        others = [s[j][k] for k in range(b) if k != j and labels[k] == labels[j]]
        negs = [s[j][k] for k in range(b) if labels[k] != labels[j]]
        neg_bound = max(negs) if negs else -math.inf
        pos_bound = min(others) if others else math.inf
        pos[j] = [i for i in range(b) if labels[i] == labels[j] and s[i][j] - epsilon < neg_bound]
        neg[j] = [i for i in range(b) if labels[i] != labels[j] and s[i][j] + epsilon > pos_bound]
    return pos, neg


def reference(x, labels, alpha=2.0, beta=40.0, base=0.5, epsilon=0.1):
    """mean over anchors with positives of 1/alpha log(1 + sum_P exp(-alpha (S - base))) + the same over
    anchors with negatives of 1/beta log(1 + sum_N exp(beta (S - base))); log(2)/weight when none."""
    pos, neg = reference_pairs(x.detach(), labels, epsilon)
    terms = []
    for pairs, w, sign in ((pos, alpha, -1.0), (neg, beta, 1.0)):
        per_anchor = [
            torch.log(1 + sum(torch.exp(sign * w * (x[i] @ x[j] - base)) for i in idx)) / w
            for j, idx in pairs.items()
            if idx
        ]
        terms.append(sum(per_anchor) / len(per_anchor) if per_anchor else torch.tensor(math.log(2) / w))
    return terms[0] + terms[1]


def test_batch_exercises_the_mining():
    pos, neg = reference_pairs(embeddings(), LABELS.tolist())
    assert 3 in pos[3] and 0 not in pos[0]  # the diagonal, only where its condition holds
    assert pos[5] == [] and neg[5] == []  # a class alone: no bound, nothing mined against it
    assert any(len(p) > 1 for p in pos.values()) and len({len(n) for n in neg.values()}) > 2


def test_miner_matches_reference():
    x = embeddings()
    pos_anchors, positives, neg_anchors, negatives = MultiSimilarityMiner(0.1).mine(x, LABELS)
    pos, neg = reference_pairs(x, LABELS.tolist())
    assert sorted(zip(pos_anchors.tolist(), positives.tolist(), strict=True)) == sorted(
        (j, i) for j in pos for i in pos[j]
    )
    assert sorted(zip(neg_anchors.tolist(), negatives.tolist(), strict=True)) == sorted(
        (j, i) for j in neg for i in neg[j]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference(seed):
    method = build_method("multisimilarity", num_classes=6, embedding_dim=6)
    assert_same(lambda e: method(e, LABELS), lambda e: reference(e, LABELS.tolist()), embeddings(seed=seed))


def test_given_pairs_are_used():
    """compute_loss takes the pairs: with another miner's pairs it follows them, not its own mining."""
    x = embeddings()
    method = MultiSimilarity(alpha=2.0, beta=40.0, base=0.5, epsilon=0.1)
    loose = MultiSimilarityMiner(epsilon=1.0)  # mines more pairs
    pairs = loose.mine(x, LABELS)
    expected = MultiSimilarity(alpha=2.0, beta=40.0, base=0.5, epsilon=1.0)(x, LABELS)
    torch.testing.assert_close(method.compute_loss(x, LABELS, pairs), expected)
    assert not torch.isclose(method(x, LABELS), expected)


def test_no_pairs_gives_constant_terms():
    x = embeddings()[:3]
    empty = torch.zeros(0, dtype=torch.long)
    method = MultiSimilarity(alpha=2.0, beta=40.0, base=0.5, epsilon=0.1)
    value = method.compute_loss(x, torch.tensor([0, 1, 2]), (empty, empty, empty, empty))
    assert value.item() == pytest.approx(math.log(2) / 2 + math.log(2) / 40)


def test_weights_are_not_swapped():
    method = build_method("multisimilarity", num_classes=6, embedding_dim=6, alpha=2.0, beta=40.0)
    assert (method.alpha, method.beta, method.base, method.epsilon) == (2.0, 40.0, 0.5, 0.1)
    x = embeddings()
    value = method(x, LABELS)
    assert value.item() == pytest.approx(reference(x, LABELS.tolist(), alpha=2.0, beta=40.0).item(), rel=1e-9)
    assert abs(value.item() - reference(x, LABELS.tolist(), alpha=40.0, beta=2.0).item()) > 1e-2


def test_pml_variant_is_pml():
    method = build_method("multisimilarity", num_classes=6, embedding_dim=6, variant="pml")
    x = embeddings()
    loss, miner = losses.MultiSimilarityLoss(alpha=2.0, beta=40.0, base=0.5), miners.MultiSimilarityMiner(0.1)
    assert_same(lambda e: method(e, LABELS), lambda e: loss(e, LABELS, miner(e, LABELS)), x)
    assert abs(method(x, LABELS).item() - reference(x, LABELS.tolist()).item()) > 1e-3
