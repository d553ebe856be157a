import numpy as np
import pytest
import torch
from evaluate_reference import ranked_relevance

from tasks.evaluate import ranks, recall_at_k
from tasks.evaluate.ranks import positive_ranks


def _data(seed: int, n: int, d: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if ties:  # few distinct vectors: many exact ties and duplicates
        x = rng.integers(-1, 2, size=(n, d)).astype(np.float32)
    else:
        x = rng.normal(size=(n, d)).astype(np.float32)
    codes = np.unique(rng.integers(0, max(1, n // 4), n), return_inverse=True)[1]
    return x, codes


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_ranks_match_full_sort(metric: str, ties: bool, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(20, 70))
    x, codes = _data(seed, n, d=3, ties=ties)
    depth = int(rng.integers(1, n))
    block = int(rng.integers(3, 25))
    # the CPU's products in strips of a few rows, ragged ones and diagonal blocks' too
    monkeypatch.setattr(ranks, "CPU_STRIP", int(rng.integers(1, block + 1)))
    monkeypatch.setattr(ranks, "CPU_DIAGONAL_STRIP", int(rng.integers(1, block + 1)))
    pr = positive_ranks(torch.from_numpy(x), codes, depth, metric=metric, block=block)
    for i, rel in enumerate(ranked_relevance(x, codes, metric)):
        expected = np.flatnonzero(rel) + 1
        cap = max(depth, len(expected)) + 1
        got = pr.ranks[pr.offsets[i] : pr.offsets[i + 1]]
        np.testing.assert_array_equal(got, np.minimum(expected, cap))
    assert (pr.depth.numpy() == np.maximum(depth, pr.num_positives.numpy())).all()


def test_all_singletons_and_single_class() -> None:
    x = torch.randn(10, 4)
    pr = positive_ranks(x, np.arange(10), 5)
    assert len(pr.ranks) == 0 and bool((pr.num_positives == 0).all())
    pr = positive_ranks(x, np.zeros(10, np.int64), 5, block=3)
    assert all(
        (pr.ranks[pr.offsets[i] : pr.offsets[i + 1]].numpy() == np.arange(1, 10)).all() for i in range(10)
    )


def test_unknown_metric() -> None:
    with pytest.raises(ValueError, match="metric"):
        positive_ranks(torch.randn(4, 2), np.zeros(4, np.int64), 3, metric="cosine")


def test_metrics_refuse_cutoffs_beyond_the_depth() -> None:
    pr = positive_ranks(torch.randn(30, 3), np.arange(30) % 15, 4)
    assert 0.0 <= recall_at_k(pr, 4) <= 1.0
    with pytest.raises(ValueError, match="depth"):
        recall_at_k(pr, 5)
