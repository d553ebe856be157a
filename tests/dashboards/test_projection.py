"""The 2-D projection of class means: PCA against numpy's own covariance eigenvectors; UMAP where
umap-learn is installed."""

from __future__ import annotations

import numpy as np
import pytest

from dashboards import projection
from dashboards.projection import UMAP_MIN_CLASSES, pca, project, umap_available


def _blobs(n: int = 40, dim: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, (n // 2, dim)), rng.normal(6, 1, (n - n // 2, dim))])


def test_pca_matches_the_covariance_eigenvectors():
    matrix = _blobs()
    got = pca(matrix)
    values, vectors = np.linalg.eigh(np.cov(matrix, rowvar=False))
    top = vectors[:, ::-1][:, :2]
    expected = (matrix - matrix.mean(axis=0)) @ top
    signs = np.sign(np.sum(got.coords * expected, axis=0))  # an eigenvector's sign is arbitrary
    np.testing.assert_allclose(got.coords * signs, expected, atol=1e-9)
    share = values[::-1] / values.sum()
    assert got.labels == (f"PC1 ({share[0]:.0%})", f"PC2 ({share[1]:.0%})")


def test_pca_with_one_component_draws_a_line():
    got = pca(np.array([[0.0], [2.0], [5.0]]))  # one-dimensional features: no second component
    assert got.coords.shape == (3, 2) and np.all(got.coords[:, 1] == 0) and got.labels[1] == "PC2"


def test_too_few_classes_for_umap_use_pca(monkeypatch):
    monkeypatch.setattr(projection, "umap_2d", lambda matrix: pytest.fail("UMAP on too few classes"))
    assert project(_blobs(UMAP_MIN_CLASSES - 1)).method.endswith("(PCA)")


def test_umap_when_installed_keeps_the_two_groups_apart():
    if not umap_available():
        pytest.skip("umap-learn is not installed (optional: the dashboard then uses PCA)")
    got = project(_blobs())
    assert got.method.startswith("UMAP") and got.labels == ("UMAP 1", "UMAP 2")
    first, second = got.coords[:20], got.coords[20:]
    gap = np.linalg.norm(first.mean(axis=0) - second.mean(axis=0))
    assert gap > 2 * max(first.std(axis=0).max(), second.std(axis=0).max())
