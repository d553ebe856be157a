import numpy as np
import pytest
from evaluate_reference import reference_nmi

from tasks.evaluate import kmeans_assign, normalized_mutual_info
from tasks.evaluate.nmi import faiss_gpus


@pytest.mark.parametrize("seed", range(3))
def test_nmi_matches_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 7, 200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 9, 200))
    assert normalized_mutual_info(a, b) == pytest.approx(reference_nmi(a, b), abs=1e-12)


def test_nmi_matches_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    a = np.array([f"c{i}" for i in rng.integers(0, 12, 300)])
    b = rng.integers(0, 10, 300) * 3
    assert normalized_mutual_info(a, b) == pytest.approx(
        metrics.normalized_mutual_info_score(a, b), abs=1e-12
    )


def test_nmi_edge_cases() -> None:
    same = np.array([0, 0, 1, 1, 2])
    assert normalized_mutual_info(same, 5 - same) == pytest.approx(1.0)
    assert normalized_mutual_info(np.zeros(4), np.zeros(4)) == 1.0
    assert normalized_mutual_info(np.zeros(4), np.arange(4)) == 0.0


def test_kmeans_assign_is_seeded() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    a = kmeans_assign(x, 6, seed=3)
    assert a.shape == (120,) and a.dtype == np.int64 and set(a) <= set(range(6))
    np.testing.assert_array_equal(a, kmeans_assign(x, 6, seed=3))


def test_kmeans_assign_is_faiss_kmeans() -> None:
    """The clustering is faiss.Kmeans's (same seed, iterations, final assignment), on the CPU."""
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    km = faiss.Kmeans(6, 9, niter=20, seed=4, min_points_per_centroid=1)
    km.train(x)
    expected = km.index.search(x, 1)[1][:, 0]
    np.testing.assert_array_equal(kmeans_assign(x, 9, seed=4), expected)
    # asking for a GPU without faiss GPU support clusters on the CPU
    np.testing.assert_array_equal(kmeans_assign(x, 9, seed=4, gpu=None if faiss_gpus() else 0), expected)
