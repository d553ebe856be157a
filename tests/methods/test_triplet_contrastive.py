"""Triplet (ooDML criteria/triplet.py + batchminer/semihard.py) and contrastive (criteria/contrastive.py
over distance-weighted triplets) against loops over the mined tuples; ``pml`` variants against
pytorch-metric-learning; the semi-hard miner's invariants."""

import pytest
import torch
from pytorch_metric_learning import losses, miners

from tasks.methods import DistanceWeightedSampler, build_method
from tasks.methods.semihard import SemihardMiner
from tests.methods.reference import LABELS, assert_same, embeddings


def reference_triplet(x, triplets, margin=0.2):
    """1/|T| sum [|a - p|² - |a - n|² + margin]_+ over the given triplets."""
    terms = [
        torch.relu((x[a] - x[p]).pow(2).sum() - (x[a] - x[n]).pow(2).sum() + margin) for a, p, n in triplets
    ]
    return sum(terms) / len(terms)


def reference_contrastive(x, triplets, pos_margin=0.0, neg_margin=1.0):
    """1/|T| sum [|a - p + eps| - m_pos]_+ + 1/|T| sum [m_neg - |a - n + eps|]_+, eps = 1e-6."""
    pos = sum(torch.relu((x[a] - x[p] + 1e-6).norm() - pos_margin) for a, p, _ in triplets)
    neg = sum(torch.relu(neg_margin - (x[a] - x[n] + 1e-6).norm()) for a, _, n in triplets)
    return pos / len(triplets) + neg / len(triplets)


def _fixed(mined):
    return lambda e, y: mined


def test_semihard_miner_invariants():
    x, labels = embeddings(), LABELS
    d = torch.cdist(x, x)
    miner = SemihardMiner(margin=0.2)
    drawn: dict[int, set[int]] = {}
    for seed in range(200):
        torch.manual_seed(seed)
        a, p, n = miner.mine(x, labels)
        # one triplet per anchor with another same-class sample and a negative
        assert a.tolist() == [i for i in range(len(labels)) if (labels == labels[i]).sum() > 1]
        assert (labels[p] == labels[a]).all() and (p != a).all() and (labels[n] != labels[a]).all()
        for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist(), strict=True):
            semihard = [
                j
                for j in range(len(labels))
                if labels[j] != labels[ai] and d[ai, pi] < d[ai, j] < d[ai, pi] + 0.2
            ]
            assert ni in semihard if semihard else True
            if not semihard:
                drawn.setdefault(ai * 100 + pi, set()).add(ni)
    # without a semi-hard negative, every negative can be drawn
    assert any(len(v) > 3 for v in drawn.values())


def test_semihard_miner_skips_anchors_without_negatives():
    a, p, n = SemihardMiner(0.2).mine(embeddings()[:3], torch.zeros(3, dtype=torch.long))
    assert len(a) == len(p) == len(n) == 0


def test_triplet_matches_reference():
    torch.manual_seed(0)
    x = embeddings()
    mined = SemihardMiner(0.2).mine(x, LABELS)
    method = build_method("triplet", num_classes=6, embedding_dim=6)
    method.miner = _fixed(mined)
    triplets = list(zip(*(t.tolist() for t in mined), strict=True))
    assert_same(lambda e: method(e, LABELS), lambda e: reference_triplet(e, triplets), x)
    # hand-picked tuples, some with a zero term
    hand = [(0, 1, 3), (3, 4, 6), (6, 7, 3), (11, 12, 0)]
    t = tuple(torch.tensor(c) for c in zip(*hand, strict=True))
    assert_same(lambda e: method.compute_loss(e, LABELS, t), lambda e: reference_triplet(e, hand), x)


def test_triplet_pml_variant_is_pml():
    method = build_method("triplet", num_classes=6, embedding_dim=6, variant="pml")
    loss, miner = (
        losses.TripletMarginLoss(margin=0.2),
        miners.TripletMarginMiner(0.2, type_of_triplets="semihard"),
    )
    assert_same(lambda e: method(e, LABELS), lambda e: loss(e, LABELS, miner(e, LABELS)), embeddings())


@pytest.mark.parametrize("seed", [0, 1])
def test_contrastive_matches_reference(seed):
    torch.manual_seed(seed)
    x = embeddings(seed=seed)
    mined = DistanceWeightedSampler().mine(x, LABELS)
    assert (mined[0] == mined[1]).any()  # the singletons' (a, a) pairs are part of the mean
    method = build_method("contrastive", num_classes=6, embedding_dim=6)
    assert isinstance(method.miner, DistanceWeightedSampler)
    method.miner = _fixed(mined)
    triplets = list(zip(*(t.tolist() for t in mined), strict=True))
    assert_same(lambda e: method(e, LABELS), lambda e: reference_contrastive(e, triplets), x)


def test_contrastive_pml_variant_is_pml():
    method = build_method("contrastive", num_classes=6, embedding_dim=6, variant="pml")
    loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)
    assert_same(lambda e: method(e, LABELS), lambda e: loss(e, LABELS), embeddings())
