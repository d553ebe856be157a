"""``tasks.evaluate.kmeans`` against faiss's own k-means, and its incremental search against a full one."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from tasks.evaluate import kmeans as km


def faiss_clusters(x: np.ndarray, k: int, seed: int, niter: int) -> tuple[np.ndarray, list[int]]:
    """``faiss.Clustering`` with an exact L2 index, then every point's nearest final centroid (what
    pytorch-metric-learning's NMI does), and the number of clusters split at each iteration."""
    params = faiss.ClusteringParameters()
    params.niter, params.seed, params.min_points_per_centroid = niter, seed, 1
    clustering = faiss.Clustering(x.shape[1], k, params)
    index = faiss.IndexFlatL2(x.shape[1])
    clustering.train(x, index)
    stats = clustering.iteration_stats
    return index.search(x, 1)[1][:, 0], [stats.at(i).nsplit for i in range(stats.size())]


def blobs(n: int, k: int, d: int, noise: float, seed: int) -> np.ndarray:
    """``k`` Gaussian blobs, L2-normalised (embeddings as evaluated)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(k, d))[rng.integers(0, k, n)] + noise * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    "n, k, d, noise, niter",
    [
        (1200, 150, 128, 0.3, 20),  # separated blobs: stops early once the objective repeats
        (2000, 500, 128, 0.3, 20),  # tight blobs, two seeds in one: clusters empty out and are split
        (2000, 300, 128, 0.7, 3),  # stopped by niter before it settles
        (700, 2, 256, 1.0, 20),  # more than 256 points per centroid: faiss's subsample
    ],
)
def test_matches_faiss_clustering(
    n: int, k: int, d: int, noise: float, niter: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same clusters as faiss, after as many iterations (each one update of the means)."""
    x = blobs(n, k, d, noise, seed=n)
    expected, splits = faiss_clusters(x, k, seed=5, niter=niter)
    updates = []
    means = km._means
    monkeypatch.setattr(km, "_means", lambda *args: updates.append(1) or means(*args))
    np.testing.assert_array_equal(km.kmeans(x, k, seed=5, niter=niter), expected)
    assert len(updates) == len(splits)
    if k == 500:
        assert sum(splits) > 0, "the case meant to split empty clusters split none"


def test_as_many_clusters_as_points() -> None:
    """faiss's corner case: every point is a centroid."""
    x = blobs(40, 5, 16, 0.5, seed=1)
    np.testing.assert_array_equal(km.kmeans(x, 40, seed=2), faiss_clusters(x, 40, 2, 20)[0])


def test_split_draws_are_faiss_generator() -> None:
    """The donor draws read faiss's RandomGenerator(1234).rand_float() stream, across refills."""
    generator = faiss.RandomGenerator(km.SPLIT_SEED)
    expected = np.array([generator.rand_float() for _ in range(10_000)], dtype=np.float32)
    draws = km._Draws(km.SPLIT_SEED)
    got = []
    for count in (1, 3000, 7, 5000, 1992):
        got.append(draws.next(count).copy())
        draws.consume(count)
    np.testing.assert_array_equal(np.concatenate(got), expected)


def test_means_sum_in_point_order() -> None:
    """Each mean is its points summed one by one in float32, in point order, times 1 / size (float32)."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(500, 8)) * 10.0 ** rng.integers(-3, 4, size=(500, 1))).astype(np.float32)
    assign = rng.integers(0, 40, 500)
    assign[assign == 7] = 8  # an empty cluster
    sums = np.zeros((40, 8), dtype=np.float32)
    sizes = np.zeros(40, dtype=np.float32)
    for point, cluster in zip(x, assign, strict=True):
        sums[cluster] += point
        sizes[cluster] += 1
    for cluster in np.flatnonzero(sizes):
        sums[cluster] *= np.float32(1) / sizes[cluster]
    means, got_sizes = km._means(x, assign, 40)
    np.testing.assert_array_equal(means, sums)
    np.testing.assert_array_equal(got_sizes, sizes)


@pytest.mark.parametrize("moved_share", [0.0, 0.02, 0.5, 1.0])
def test_incremental_search_equals_full_search(moved_share: float) -> None:
    """After centroids move, the kept assignment is the nearest centroid of a search of every point
    against every centroid. Only where two centroids tie within float32 rounding (here: copies of one
    centroid) may the two pick differently, as two BLAS calls may round the same product differently."""
    rng = np.random.default_rng(int(moved_share * 100))
    x = blobs(3000, 60, 64, 1.0, seed=4)
    before = x[rng.choice(len(x), 200, replace=False)].copy()
    search = km._Search(x, before)
    after = before.copy()
    moved = rng.random(200) < moved_share
    after[moved] += 0.05 * rng.normal(size=(moved.sum(), 64)).astype(np.float32)
    after[np.flatnonzero(moved)[:3]] = after[150]  # copies of an unmoved centroid
    search.move(after)
    full = km._Search(x, after)
    exact = ((x[:, None, :].astype(np.float64) - after[None, :, :]) ** 2).sum(-1)
    nearest_two = np.sort(exact, axis=1)[:, :2]
    tied = nearest_two[:, 1] - nearest_two[:, 0] < 1e-5
    differ = search.assign != full.assign
    assert not (differ & ~tied).any()
    rows = np.flatnonzero(differ)
    np.testing.assert_allclose(exact[rows, search.assign[rows]], exact[rows, full.assign[rows]], atol=1e-5)
    np.testing.assert_allclose(search.distances(), full.distances(), atol=1e-5)
    if moved_share == 0.5:
        assert tied.sum() > 0  # the copies do tie


def test_search_uses_faiss_distance_rounding() -> None:
    """The squared distances are faiss's for the same pairs (its norms; |x|^2 + (|c|^2 - 2 x.c))."""
    x = blobs(600, 10, 256, 1.0, seed=6)
    centroids = x[:10].copy()
    index = faiss.IndexFlatL2(256)
    index.add(centroids)
    distances, nearest = index.search(x, 1)
    search = km._Search(x, centroids)
    np.testing.assert_array_equal(search.assign, nearest[:, 0])
    np.testing.assert_allclose(search.distances(), distances[:, 0], rtol=0, atol=1e-6)


def test_settled_iterations_search_a_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once few centroids move, an iteration compares a fraction of the point-centroid pairs."""
    x = blobs(4000, 400, 64, 1.0, seed=7)
    offered: list[int] = []
    offer = km._Search._offer

    def counting(self: km._Search, rows: np.ndarray, columns: np.ndarray) -> None:
        offered.append(len(rows) * len(columns))
        offer(self, rows, columns)

    monkeypatch.setattr(km._Search, "_offer", counting)
    km.kmeans(x, 400, seed=1)
    per_search = [a + b for a, b in zip(offered[1::2], offered[2::2], strict=True)]
    full = len(x) * 400
    assert offered[0] == full and len(per_search) >= 3
    assert per_search[-1] < 0.25 * full


def test_bad_input() -> None:
    x = blobs(50, 3, 8, 0.5, seed=0)
    with pytest.raises(ValueError, match="10 clusters for 5 points"):
        km.kmeans(x[:5], 10)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        km.kmeans(x, 3)


def test_block_height_leaves_the_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many centroids shorten the product blocks (a block stays within ``BLOCK_ENTRIES``): the clusters
    are the same as with one block of every row."""
    x = blobs(1500, 120, 64, 0.7, seed=8)
    whole = km.kmeans(x, 120, seed=3)
    monkeypatch.setattr(km, "BLOCK_ENTRIES", 120 * 7 + 5)  # 7 rows per block against all centroids
    np.testing.assert_array_equal(km.kmeans(x, 120, seed=3), whole)
