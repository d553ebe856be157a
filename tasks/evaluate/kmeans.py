"""faiss's k-means (``faiss.Clustering`` with an exact L2 index), with each assignment step searching only
what can have changed.

The algorithm is faiss's, step for step: the training set subsampled to ``max_points_per_centroid`` points
per centroid when larger; centroids started at the points of faiss's seeded permutation
(``faiss.rand_perm``); then Lloyd iterations, each assigning every point to its nearest centroid
(ties to the lowest index), summing the objective, moving every centroid to the mean of its points
(summed in point order, in float32) and splitting empty clusters as faiss does (a donor drawn with
probability ``(size - 1) / (n - k)`` from the generator seeded with 1234, both copies pushed apart by
``1 ± 1/1024``); it stops after ``niter`` iterations or when the objective repeats; the returned clusters
are the nearest centroids of every point at the end.

What differs is the work of the assignment step. A point whose centroid did not move in the last update
keeps it as its nearest among the centroids that did not move (their distances are unchanged), so it
is compared only with the centroids that moved; a point whose centroid moved is searched against all of
them. Once the clusters settle, few centroids move and an iteration costs a fraction of a full search.

Distances are rounded as faiss's kernel rounds them: its norms (``fvec_norms_L2sqr``) and
``|x|^2 + (|c|^2 - 2 x.c)`` on float32 products. Two BLAS calls may still round one product differently,
so where a point's two nearest centroids tie within float32 rounding it may take the other one than
faiss's search (one point of 73,568 in the SOP-size benchmark's runs, or none); that is the only
difference (``tests/evaluate/test_kmeans.py`` compares the clusters with faiss's).
"""

from __future__ import annotations

import numpy as np

SPLIT_SEED = 1234  # faiss seeds the empty-cluster donor draws with 1234 at every split
SPLIT_EPS = np.float32(1 / 1024)  # faiss's "a bit above machine epsilon for float16"
QUERY_BLOCK = 4096  # rows per product block: a 4096 x k float32 block (185 MB at k = 11,316) ...
BLOCK_ENTRIES = 2**26  # ... or fewer rows, so that a block stays within 256 MB however many centroids
MAX_POINTS_PER_CENTROID = 256  # faiss's ClusteringParameters default


def faiss_permutation(n: int, seed: int) -> np.ndarray:
    """faiss's seeded random permutation of ``range(n)`` (``faiss.rand_perm``)."""
    import faiss

    perm = np.empty(n, dtype=np.int32)
    faiss.rand_perm(faiss.swig_ptr(perm), n, seed)
    return perm


def kmeans(x: np.ndarray, k: int, *, seed: int = 1234, niter: int = 20) -> np.ndarray:
    """Cluster index of every row of ``x`` after faiss's k-means (see the module docstring)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("k-means: the embeddings contain NaN or infinite values")
    n = len(x)
    if k < 1 or k > n:
        raise ValueError(f"k-means: {k} clusters for {n} points; need 1 <= clusters <= points")
    train = x
    if n > k * MAX_POINTS_PER_CENTROID:
        train = x[faiss_permutation(n, seed)[: k * MAX_POINTS_PER_CENTROID]]
    centroids = train[faiss_permutation(len(train), seed + 1)[:k]] if len(train) > k else train.copy()
    search = _Search(train, centroids)
    if len(train) > k:
        previous_obj = None
        for _ in range(niter):
            obj = np.cumsum(search.distances(), dtype=np.float32)[-1]  # faiss sums in point order, in float32
            updated, sizes = _means(train, search.assign, k)
            _split_empty(updated, sizes, len(train))
            search.move(updated)
            if previous_obj is not None and obj == previous_obj:
                break
            previous_obj = obj
    if train is x:
        return search.assign.astype(np.int64)
    return _Search(x, search.centroids).assign.astype(np.int64)


def squared_norms(x: np.ndarray) -> np.ndarray:
    """Every row's squared norm as faiss computes it (``fvec_norms_L2sqr``: its sums round as faiss's)."""
    import faiss

    out = np.empty(len(x), dtype=np.float32)
    faiss.fvec_norms_L2sqr(faiss.swig_ptr(out), faiss.swig_ptr(x), x.shape[1], len(x))
    return out


class _Search:
    """The nearest centroid of every point, kept up to date as the centroids move.

    A point's score for a centroid ``c`` is ``x.c - |c|^2 / 2``; the highest score is the nearest centroid,
    and ``|x|^2 - 2 score`` is the squared distance, rounded as faiss's kernel rounds it
    (``|x|^2 + (|c|^2 - 2 x.c)``: doubling is exact in float32).
    """

    def __init__(self, x: np.ndarray, centroids: np.ndarray) -> None:
        self.x = x
        self.norms = squared_norms(x)
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.assign = np.zeros(len(x), dtype=np.int64)
        self.score = np.full(len(x), -np.inf, dtype=np.float32)
        self._offer(np.arange(len(x)), np.arange(len(self.centroids)))

    def distances(self) -> np.ndarray:
        """Squared distance of every point to its centroid (faiss clamps rounding below 0 to 0)."""
        return np.maximum(self.norms - 2 * self.score, np.float32(0))

    def move(self, centroids: np.ndarray) -> None:
        """Take the new centroids: a point whose centroid moved is searched against every centroid, any
        other point only against those that moved."""
        moved = np.flatnonzero((centroids != self.centroids).any(axis=1))
        self.centroids = centroids
        if not len(moved):
            return
        was_moved = np.zeros(len(centroids), dtype=bool)
        was_moved[moved] = True
        stale = was_moved[self.assign]
        rows = np.flatnonzero(stale)
        self.score[rows] = -np.inf
        self._offer(rows, np.arange(len(centroids)))
        self._offer(np.flatnonzero(~stale), moved)

    def _offer(self, rows: np.ndarray, columns: np.ndarray) -> None:
        """Compare ``rows`` with the centroids ``columns`` (ascending): a higher score, or an equal score
        at a lower index, takes the point."""
        if not len(rows) or not len(columns):
            return
        centroids = np.ascontiguousarray(self.centroids[columns])
        half_norms = np.float32(0.5) * squared_norms(centroids)
        step = max(1, min(QUERY_BLOCK, BLOCK_ENTRIES // len(columns)))
        block = np.empty((min(step, len(rows)), len(columns)), dtype=np.float32)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            scores = np.matmul(self.x[chunk], centroids.T, out=block[: len(chunk)])
            scores -= half_norms
            best = scores.argmax(axis=1)
            score = scores[np.arange(len(chunk)), best]
            index = columns[best]
            takes = (score > self.score[chunk]) | (
                (score == self.score[chunk]) & (index < self.assign[chunk])
            )
            self.score[chunk[takes]] = score[takes]
            self.assign[chunk[takes]] = index[takes]


def _means(x: np.ndarray, assign: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every cluster's mean, summed in point order in float32 and scaled by ``1 / size`` as faiss does,
    and the cluster sizes (float32); an empty cluster's centroid is 0 until it is split."""
    sums = np.zeros((k, x.shape[1]), dtype=np.float32)
    np.add.at(sums, assign, x)
    sizes = np.bincount(assign, minlength=k).astype(np.float32)
    filled = np.flatnonzero(sizes)
    sums[filled] *= (np.float32(1) / sizes[filled])[:, None]
    return sums, sizes


class _Draws:
    """faiss's ``RandomGenerator(seed).rand_float()`` stream (an mt19937 output over 2^32, in float32),
    read in order; numpy's legacy ``RandomState`` seeds the same mt19937."""

    def __init__(self, seed: int) -> None:
        self._state = np.random.RandomState(seed)
        self._drawn = np.empty(0, dtype=np.float32)
        self._read = 0

    def next(self, count: int) -> np.ndarray:
        """The next ``count`` draws, not yet consumed (``consume`` says how many were used)."""
        missing = self._read + count - len(self._drawn)
        if missing > 0:
            raw = self._state.randint(0, 2**32, size=max(missing, 4096), dtype=np.uint32)
            fresh = raw.astype(np.float32) / np.float32(4294967295.0)
            self._drawn = np.concatenate([self._drawn[self._read :], fresh])
            self._read = 0
        return self._drawn[self._read : self._read + count]

    def consume(self, count: int) -> None:
        self._read += count


def _split_empty(centroids: np.ndarray, sizes: np.ndarray, n: int) -> int:
    """Give every empty cluster half of a donor, as faiss's ``split_clusters`` does (in place); the count.

    For each empty cluster in index order, candidates ``0, 1, 2, ...`` (cyclically) are tried, one draw
    each, until a draw falls below ``(size - 1) / (n - k)``; after ``10 k`` tries the largest cluster
    gives. The donor's centroid is copied and both are pushed apart by ``1 ± 1/1024`` coordinate-wise.
    """
    k = len(sizes)
    empty = np.flatnonzero(sizes == 0)
    if not len(empty):
        return 0
    draws = _Draws(SPLIT_SEED)
    max_tries = 10 * k
    denominator = np.float64(np.float32(n - k))
    up, down = np.float32(1) + SPLIT_EPS, np.float32(1) - SPLIT_EPS
    for empty_index in empty:
        chance = ((sizes.astype(np.float64) - 1.0) / denominator).astype(np.float32)
        donor = None
        tried = 0
        while tried < max_tries and donor is None:
            count = min(4 * k, max_tries - tried)
            candidates = (tried + np.arange(count)) % k
            hits = np.flatnonzero(draws.next(count) < chance[candidates])
            used = hits[0] + 1 if len(hits) else count
            draws.consume(used)
            if len(hits):
                donor = int(candidates[hits[0]])
            tried += used
        if donor is None:
            donor = int(np.argmax(sizes))
        centroids[empty_index] = centroids[donor]
        centroids[empty_index, 0::2] *= up
        centroids[empty_index, 1::2] *= down
        centroids[donor, 0::2] *= down
        centroids[donor, 1::2] *= up
        sizes[empty_index] = sizes[donor] / np.float32(2)
        sizes[donor] -= sizes[empty_index]
    return len(empty)
