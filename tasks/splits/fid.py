"""Frechet distance between two sets of class-mean vectors (docs/protocol.md section 1).

    FID(A, B) = |mu_A - mu_B|^2 + tr(C_A) + tr(C_B) - 2 tr((P Q)^(1/2)),   P = C_A + eps I, Q = C_B + eps I

with C the sample covariance (divisor n - 1) and eps = 1e-8 as in the ooDML reference, which adds
eps * I to each covariance before the product. ``tr((P Q)^(1/2))`` is the sum of the square roots of
the eigenvalues of P Q, which are those of the symmetric matrix L^T Q L for the Cholesky factor P = L L^T.

Two fast routes compute that trace exactly (no general matrix square root):

* ``n < d`` (e.g. 200 CUB classes, 2048-d): both covariances live in the row space S of the stacked,
  centred data, of dimension r <= n_A + n_B. On the orthogonal complement P Q = eps^2 I, which adds
  (d - r) * eps; on S everything is an r x r problem built from the small Gram matrix of the data.
* ``n >= d`` (e.g. SOP's 11k classes): one Cholesky factor and one symmetric eigenvalue problem of size d,
  computed from each side's sum and scatter matrix ``X^T X`` (``fid_from_scatter``). ``SubsetScatter``
  keeps those two for a subset of the rows of a fixed matrix and updates them by the rows that enter and
  leave, so a split progression that moves K classes pays a rank-2K update instead of two full
  covariances (docs/protocol.md section 2).

The ``n >= d`` route runs all its d x d work (scatter, Cholesky, L^T Q L, eigenvalues) in
scipy's BLAS/LAPACK: numpy's ``@`` and ``numpy.linalg`` use a second OpenBLAS whose idle threads spin
against scipy's on a 2-core box (measured: ``numpy.linalg.eigvalsh`` several times slower there).

``fid_reference`` is the textbook route through ``scipy.linalg.sqrtm`` and is kept for tests only.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.linalg import blas, lapack
from threadpoolctl import threadpool_limits

EPS = 1e-8
# A SubsetScatter recomputes its scatter matrix from the rows after this many low-rank updates. Each
# update adds rounding of about 2^-53 times the matrix's scale; 64 of them stay far below the 1e-6
# relative exactness required of a recorded FID (tests compare long update chains with a recomputation).
REFRESH_AFTER_UPDATES = 64
# BLAS threads for the d x d eigenvalue problem (None: the library's setting). Its tridiagonal reduction
# makes thousands of small matrix-vector calls, each a barrier for all threads: on a busy 2-core box two
# threads took 2-14 s at d = 2048 where one took 0.8-1.2 s (load average 6-7, benchmarks/bench_fid.py).
EIGEN_THREADS: int | None = 1


def _as_sets(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    for name, x in (("a", a), ("b", b)):
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(
                f"FID needs at least 2 vectors per set as an (n, d) array; set {name} has shape {x.shape}"
            )
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"FID sets differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def _sqrt_eig_sum(p: np.ndarray, q: np.ndarray) -> float:
    """tr((P Q)^(1/2)) for symmetric positive definite P, Q of the same size."""
    chol = np.linalg.cholesky(p)
    eig = np.linalg.eigvalsh(chol.T @ q @ chol)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def _double_centre(block: np.ndarray) -> np.ndarray:
    return block - block.mean(axis=0, keepdims=True) - block.mean(axis=1, keepdims=True) + block.mean()


def fid_from_gram(gram: np.ndarray, a: np.ndarray, b: np.ndarray, dim: int, eps: float = EPS) -> float:
    """FID of the vector sets indexed by ``a`` and ``b``, given the Gram matrix of all vectors.

    Exact when ``len(a) + len(b) <= dim``: every term is a function of inner products, so a search that
    evaluates many partitions of the same vectors pays for the d-dimensional products only once.
    """
    na, nb = len(a), len(b)
    haa, hbb, hab = gram[np.ix_(a, a)], gram[np.ix_(b, b)], gram[np.ix_(a, b)]
    mean_term = haa.mean() + hbb.mean() - 2.0 * hab.mean()
    saa = _double_centre(haa) / (na - 1)
    sbb = _double_centre(hbb) / (nb - 1)
    sab = _double_centre(hab) / np.sqrt((na - 1) * (nb - 1))
    # Gram of the stacked centred data z (rows scaled so that C_A = z_A^T z_A): z z^T = V Lambda V^T,
    # and z = coords @ U^T for an orthonormal basis U of the row space S, with coords = V sqrt(Lambda).
    lam, vec = np.linalg.eigh(np.block([[saa, sab], [sab.T, sbb]]))
    keep = lam > lam[-1] * 1e-12 * len(lam)
    coords = vec[:, keep] * np.sqrt(lam[keep])
    ca, cb = coords[:na], coords[na:]
    r = coords.shape[1]
    # On the complement of S both P and Q act as eps * I: (dim - r) eigenvalues eps^2 of P Q.
    cross = _sqrt_eig_sum(ca.T @ ca + eps * np.eye(r), cb.T @ cb + eps * np.eye(r)) + (dim - r) * eps
    return float(mean_term + np.trace(saa) + np.trace(sbb) - 2.0 * cross)


def scatter_lower(rows: np.ndarray) -> np.ndarray:
    """``rows^T rows`` (d x d, Fortran order); only the lower triangle is computed, the upper is zero."""
    rows = np.asarray(rows, dtype=np.float64)
    # rows.T is a Fortran-ordered view, so f2py passes it without a copy: C = A A^T with A = rows^T.
    return blas.dsyrk(1.0, rows.T, trans=0, lower=1)


def _covariance_lower(total: np.ndarray, scatter: np.ndarray, n: int) -> np.ndarray:
    """Sample covariance (divisor n - 1) from the sum and scatter of n vectors; lower triangle valid."""
    cov = np.array(scatter, order="F")
    cov = blas.dsyr(-1.0 / n, total, lower=1, a=cov, overwrite_a=1)  # scatter - n mu mu^T, lower part
    cov *= 1.0 / (n - 1)
    return cov


def sqrt_trace_product_lower(p: np.ndarray, q: np.ndarray) -> float:
    """tr((P Q)^(1/2)) for symmetric positive definite P and Q given by their lower triangles.

    P = L L^T (Cholesky); the eigenvalues of P Q are those of the symmetric L^T Q L, whose square roots
    are summed. L^T Q L comes from LAPACK's ``dsygst`` (itype 2), which uses the symmetry of Q: about d^3
    flops against 2 d^3 for two triangular products (1.9-2.5 s against 3.2 s at d = 2048 on one thread,
    load average 8). Overwrites both, and reads only their lower triangles.
    """
    chol, info = lapack.dpotrf(p, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"covariance + eps * I is not positive definite (dpotrf info {info})")
    inner, info = lapack.dsygst(q, chol, itype=2, lower=1, overwrite_a=1)  # L^T Q L, lower triangle
    if info != 0:
        raise np.linalg.LinAlgError(f"L^T Q L failed (dsygst info {info})")
    # Eigenvalues only: 'evr' was at least as fast as 'ev', 'evd' and 'evx' at d = 2048 in paired runs here
    # (one thread: 0.83 s min against 'ev' 0.89 s, load 6-7); all reduce to tridiagonal form first.
    with threadpool_limits(limits=EIGEN_THREADS, user_api="blas"):
        eig = linalg.eigh(
            inner, lower=True, eigvals_only=True, driver="evr", overwrite_a=True, check_finite=False
        )
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def fid_terms_from_scatter(
    total_a: np.ndarray,
    scatter_a: np.ndarray,
    n_a: int,
    total_b: np.ndarray,
    scatter_b: np.ndarray,
    n_b: int,
    eps: float = EPS,
) -> tuple[float, np.ndarray, np.ndarray]:
    """FID's terms but the cross term, ``|mu_A - mu_B|^2 + tr(C_A) + tr(C_B)``, and the lower triangles
    of P and Q, from each set's vector sum, scatter matrix X^T X (lower triangle) and size.

    The vectors should be centred near their joint mean (FID is translation invariant): the covariance
    is the scatter minus n mu mu^T, which loses precision when mu is large against the spread.
    """
    d = len(total_a)
    cov_a = _covariance_lower(total_a, scatter_a, n_a)
    cov_b = _covariance_lower(total_b, scatter_b, n_b)
    traces = float(np.trace(cov_a) + np.trace(cov_b))
    diff = total_a / n_a - total_b / n_b
    cov_a[np.diag_indices(d)] += eps
    cov_b[np.diag_indices(d)] += eps
    return float(diff @ diff + traces), cov_a, cov_b


def fid_from_terms(terms: float, p: np.ndarray, q: np.ndarray) -> float:
    """FID from ``fid_terms_from_scatter``'s three values: the terms minus twice ``tr((P Q)^(1/2))``.
    Overwrites ``p`` and ``q``."""
    return float(terms - 2.0 * sqrt_trace_product_lower(p, q))


def fid_from_scatter(
    total_a: np.ndarray,
    scatter_a: np.ndarray,
    n_a: int,
    total_b: np.ndarray,
    scatter_b: np.ndarray,
    n_b: int,
    eps: float = EPS,
) -> float:
    """FID of two sets given each one's vector sum, scatter matrix X^T X (lower triangle) and size
    (``fid_terms_from_scatter``, then ``fid_from_terms``)."""
    return fid_from_terms(*fid_terms_from_scatter(total_a, scatter_a, n_a, total_b, scatter_b, n_b, eps))


def _fid_from_covariances(a: np.ndarray, b: np.ndarray, eps: float) -> float:
    centre = (a.sum(axis=0) + b.sum(axis=0)) / (len(a) + len(b))
    a, b = a - centre, b - centre
    return fid_from_scatter(
        a.sum(axis=0), scatter_lower(a), len(a), b.sum(axis=0), scatter_lower(b), len(b), eps
    )


class SubsetScatter:
    """Sum and scatter matrix ``X^T X`` of a changing subset of the rows of a fixed matrix.

    ``move_to(mask)`` updates both by the rows that entered and left the subset (two rank-k ``dsyrk``
    products, in float64) instead of recomputing them from all member rows; after
    ``REFRESH_AFTER_UPDATES`` updates, or when more rows move than stay, it recomputes them. The rows
    that enter and those that leave are multiplied out separately and their difference added, so moving
    a class out and an identical vector in leaves the state bit for bit as it was.
    """

    def __init__(self, rows: np.ndarray, mask: np.ndarray):
        self.rows = rows
        self._recompute(mask)

    def _recompute(self, mask: np.ndarray) -> None:
        self.mask = mask.copy()
        members = self.rows[np.flatnonzero(mask)]
        self.count = len(members)
        self.total = members.sum(axis=0)
        self.scatter = scatter_lower(members)
        self.updates = 0

    def move_to(self, mask: np.ndarray) -> None:
        entered = np.flatnonzero(mask & ~self.mask)
        left = np.flatnonzero(self.mask & ~mask)
        moved = len(entered) + len(left)
        if moved == 0:
            return
        count = int(np.count_nonzero(mask))
        if self.updates >= REFRESH_AFTER_UPDATES or moved >= count:
            self._recompute(mask)
            return
        d = self.rows.shape[1]
        into, out = self.rows[entered], self.rows[left]
        gain = scatter_lower(into) if len(entered) else np.zeros((d, d), order="F")
        if len(left):
            gain -= scatter_lower(out)
        self.scatter += gain
        self.total += into.sum(axis=0) - out.sum(axis=0)
        self.mask = mask.copy()
        self.count = count
        self.updates += 1


def fid(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> float:
    """Frechet distance between the rows of ``a`` and the rows of ``b`` (fast exact route)."""
    a, b = _as_sets(a, b)
    n, d = a.shape[0] + b.shape[0], a.shape[1]
    if n >= d:
        return _fid_from_covariances(a, b, eps)
    stacked = np.concatenate([a, b])
    stacked -= stacked.mean(axis=0)  # FID is translation invariant; centring keeps the Gram well scaled
    return fid_from_gram(stacked @ stacked.T, np.arange(a.shape[0]), np.arange(a.shape[0], n), d, eps)


def fid_reference(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> float:
    """The textbook route: full covariances and ``scipy.linalg.sqrtm`` of their product (slow)."""
    a, b = _as_sets(a, b)
    d = a.shape[1]
    ca = np.cov(a, rowvar=False)
    cb = np.cov(b, rowvar=False)
    covmean = linalg.sqrtm((ca + eps * np.eye(d)) @ (cb + eps * np.eye(d)))
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(ca) + np.trace(cb) - 2.0 * np.trace(covmean).real)
