"""Frechet distance between two sets of class-mean vectors (DESIGN.md section 2).

    FID(A, B) = |mu_A - mu_B|^2 + tr(C_A) + tr(C_B) - 2 tr((P Q)^(1/2)),   P = C_A + eps I, Q = C_B + eps I

with C the sample covariance (divisor n - 1) and eps = 1e-8 as in the ooDML reference, which adds
eps * I to each covariance before the product. ``tr((P Q)^(1/2))`` is the sum of the square roots of
the eigenvalues of P Q, which are those of the symmetric matrix L^T Q L for the Cholesky factor P = L L^T.

Two fast routes compute that trace exactly (no general matrix square root):

* ``n < d`` (e.g. 200 CUB classes, 2048-d): both covariances live in the row space S of the stacked,
  centred data, of dimension r <= n_A + n_B. On the orthogonal complement P Q = eps^2 I, which adds
  (d - r) * eps; on S everything is an r x r problem built from the small Gram matrix of the data.
* ``n >= d`` (e.g. SOP's 11k classes): one Cholesky factor and one symmetric eigenvalue problem of size d.

``fid_reference`` is the textbook route through ``scipy.linalg.sqrtm`` and is kept for tests only.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

EPS = 1e-8


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


def _fid_from_covariances(a: np.ndarray, b: np.ndarray, eps: float) -> float:
    d = a.shape[1]
    ca = np.cov(a, rowvar=False)
    cb = np.cov(b, rowvar=False)
    cross = _sqrt_eig_sum(ca + eps * np.eye(d), cb + eps * np.eye(d))
    diff = a.mean(axis=0) - b.mean(axis=0)
    return float(diff @ diff + np.trace(ca) + np.trace(cb) - 2.0 * cross)


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
